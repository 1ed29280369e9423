import logging

import orjson

from services.contracts.logs import JsonFormatter, mask_text
from tests.synthetic import citizen_id


def test_citizen_ids_are_masked_in_text() -> None:
    cid = citizen_id(5)
    assert mask_text(f"person {cid} moved") == f"person *********{cid[-4:]} moved"
    assert mask_text("phone 0812345678 and 14-digit 12345678901234 stay") == (
        "phone 0812345678 and 14-digit 12345678901234 stay"
    )


def test_log_lines_are_json_with_masked_message_and_extras() -> None:
    cid = citizen_id(9)
    record = logging.makeLogRecord(
        {
            "msg": "rejected %s",
            "args": (cid,),
            "levelname": "WARNING",
            "name": "ingest",
            "citizen": cid,
            "context": {"ids": [cid]},
        }
    )
    line = JsonFormatter("ingest").format(record)
    assert cid not in line
    entry = orjson.loads(line)
    assert entry["service"] == "ingest"
    assert entry["level"] == "warning"
    assert entry["message"].endswith(cid[-4:])
    assert entry["context"] == {"ids": ["*********" + cid[-4:]]}
