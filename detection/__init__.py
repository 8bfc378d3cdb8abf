"""Detection: hashing of media, hash-bank matching, hash-list import and classifier adapters.

Submodules are imported explicitly by callers (``from detection.pdq_index import PdqIndex``) so that
importing one part (e.g. the bank-file parser in a CLI) does not pull in Pillow, numpy or FastAPI.
"""
