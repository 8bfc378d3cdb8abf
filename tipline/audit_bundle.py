"""An auditor's bundle of one user's cases, signed, checkable offline with the deployment's public key alone.

The bundle is one file: a header line, then the body the header's Ed25519 signature covers byte for byte::

    {"format": "tipline-audit-bundle/1", "public_key": "ed25519:…", "signature": "<base64>"}\\n
    {"case_ref": …, "created_at": …, "index": {name: sha256, …}, "files": {name: text, …}}

The body's files are every run's history (payloads decoded, so a reader needs no key, and still replayable),
each report's XML and NCMEC's receipt, each file's details, the evidence digests, the audit-log rows about the
case, and the timeline. Any byte changed fails the signature; the index then names the files that changed. It
holds personal data in the clear: keep it as the case's records are kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from models.timeline import Timeline
from tipline.audit_signing import (
    PUBLIC_PREFIX,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    public_key_text,
    signature_valid,
)
from tipline.case_histories import RunHistory
from tipline.timeline import CaseRecords

FORMAT = "tipline-audit-bundle/1"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def decoded_history(run: RunHistory, codec: PayloadCodec | None) -> dict:
    """The run's history as Temporal's JSON, each encrypted or compressed payload replaced by its plain form."""
    history = run.to_dict()["history"]
    return history if codec is None else await decode_payloads_in(history, codec)


async def decode_payloads_in(value: Any, codec: PayloadCodec) -> Any:
    """A history (or any part of one) as Temporal's JSON, with every payload in it decoded by ``codec``."""
    if isinstance(value, dict):
        if set(value) >= {"metadata", "data"} and isinstance(value.get("metadata"), dict) \
                and "encoding" in value["metadata"]:
            payload = json_format.ParseDict(value, Payload())
            [plain] = await codec.decode([payload])
            return json_format.MessageToDict(plain)
        return {k: await decode_payloads_in(v, codec) for k, v in value.items()}
    if isinstance(value, list):
        return [await decode_payloads_in(v, codec) for v in value]
    return value


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


async def bundle_files(runs: list[RunHistory], records: CaseRecords, evidence: dict[str, Any], timeline: Timeline,
                       codec: PayloadCodec | None) -> dict[str, str]:
    files: dict[str, str] = {}
    for number, run in enumerate(runs, 1):
        history = await decoded_history(run, codec)
        files[f"histories/{number:03d}-{_safe(run.workflow_id)}-{run.run_id}.json"] = json.dumps(
            {"workflow_id": run.workflow_id, "run_id": run.run_id, "workflow_type": run.workflow_type,
             "history": history}, indent=1)
    by_pk = {r.id: r for r in records.reports}
    for report in records.reports:
        stem = f"{report.case_number}-{report.attempt}-{report.ncmec_report_id}"
        files[f"reports/{stem}.xml"] = report.report_xml
        if report.finish_receipt_xml is not None:
            files[f"receipts/{stem}.xml"] = report.finish_receipt_xml
    for file in records.files:
        if file.file_details_xml is not None and file.report_pk in by_pk:
            report = by_pk[file.report_pk]
            files[f"file_details/{report.ncmec_report_id}-{_safe(file.media_id)}.xml"] = file.file_details_xml
    files["files.json"] = json.dumps([
        {"report_id": by_pk[f.report_pk].ncmec_report_id if f.report_pk in by_pk else None, "media_id": f.media_id,
         "ncmec_file_id": f.ncmec_file_id, "sha256": f.evidence_sha256, "md5": f.md5, "relevance": f.file_relevance,
         "uploaded_at": f.uploaded_at.isoformat()} for f in records.files], indent=1)
    files["evidence.json"] = json.dumps(evidence, indent=1, default=str)
    files["audit_log.json"] = json.dumps([
        {"seq": a.seq, "at": a.at.isoformat(), "org_id": a.org_id, "actor": a.actor, "action": a.action,
         "subject": a.subject, "detail": json.loads(a.detail), "prev_seal": a.prev_seal, "seal": a.seal}
        for a in records.audit], indent=1)
    files["timeline.json"] = timeline.model_dump_json(indent=1)
    return files


def write_bundle(case_ref: str, files: dict[str, str], key: Ed25519PrivateKey, created_at: datetime) -> bytes:
    body = _canonical({"case_ref": case_ref, "created_at": created_at.isoformat(), "files": files,
                       "index": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}})
    header = _canonical({"format": FORMAT, "public_key": public_key_text(key.public_key()),
                         "signature": base64.b64encode(key.sign(body)).decode()})
    return header + b"\n" + body


@dataclass(frozen=True)
class Verified:
    problems: list[str]
    case_ref: str | None
    files: int

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(data: bytes, public_key: Ed25519PublicKey) -> Verified:
    """Check the signature with ``public_key`` and every file against the index; name whatever is wrong."""
    header_bytes, newline, body = data.partition(b"\n")
    if not newline:
        return Verified(["not an audit bundle: no header line"], None, 0)
    try:
        header = json.loads(header_bytes)
        signature = base64.b64decode(header["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as error:
        return Verified([f"header: unreadable ({type(error).__name__}: {error})"], None, 0)
    problems = []
    if header.get("format") != FORMAT:
        problems.append(f"header: format {header.get('format')!r} is not {FORMAT}")
    if header.get("public_key") != public_key_text(public_key):
        named_key = str(header.get("public_key", "")).startswith(PUBLIC_PREFIX)
        problems.append("header: names another public key than the one given" if named_key
                        else "header: public key altered")
    signed = signature_valid(public_key, signature, body)
    try:
        content = json.loads(body)
        files, index = content["files"], content["index"]
    except (ValueError, KeyError, TypeError) as error:
        problems.append(f"body: unreadable ({type(error).__name__}: {error})")
        if not signed:
            problems.append("signature: does not verify with the given public key")
        return Verified(problems, None, 0)
    named = []
    for name in sorted(set(files) | set(index)):
        if name not in index:
            named.append(f"{name}: not in the signed index (added)")
        elif name not in files:
            named.append(f"{name}: in the index but missing (removed)")
        elif hashlib.sha256(str(files[name]).encode()).hexdigest() != index[name]:
            named.append(f"{name}: altered (its digest no longer matches the index)")
    problems.extend(named)
    if not signed:
        problems.append("signature: does not verify with the given public key"
                        + ("" if named else " (the index, the case ref or the creation time was altered, "
                                            "or another key signed it)"))
    return Verified(problems, content.get("case_ref"), len(files))
