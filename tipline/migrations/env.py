from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import models.accounts  # noqa: F401
import models.audit  # noqa: F401
import models.claims  # noqa: F401
import models.hash_banks  # noqa: F401
import models.history_export  # noqa: F401
import models.records  # noqa: F401  (registers the tables on SQLModel.metadata)
import models.retention  # noqa: F401

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connectable = engine_from_config(
        context.config.get_section(context.config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
