"""The steps of example.bue: buelon's README example, adapted to hokuro.

The one changed import line: ``from hokuro.compat.buelon import Result, StepStatus``.
Reports are ready after HOKURO_EXAMPLE_WAIT seconds (default 1.5, not buelon's 10-15), and
the download of account 2's first report resets its chain (once), deterministically.
"""

import logging
import os
import time
import uuid
from collections import Counter

from hokuro.compat.buelon import Result, StepStatus

logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")
logger = logging.getLogger(__name__)

READY_AFTER = float(os.environ.get("HOKURO_EXAMPLE_WAIT", "1.5"))
_requests: Counter = Counter()  # reports requested per account, in this process


def accounts(*args) -> list[dict[str, int | str]]:
    """Returns a list of sample account dictionaries."""
    account_list = [
        {"id": 0, "name": "Account 1"},
        {"id": 2, "name": "Account 2"},
        {"id": 3, "name": "Account 4"},
    ]
    logger.info(f"Retrieved {len(account_list)} accounts")
    return account_list


def request_report(config: dict[str, int | str]) -> dict:
    """Simulates a report request for a given account."""
    account_id = config["id"]
    _requests[account_id] += 1
    request = {
        "report_id": uuid.uuid4(),
        "time": time.time(),
        "account_id": account_id,
        "attempt": _requests[account_id],
    }
    logger.info(f"Requested report for account ID: {account_id}, "
                f"Report ID: {request['report_id']}")
    return {"account": config, "request": request}


def get_status(config: dict) -> dict | Result:
    """Checks the status of a report request: pending until it is ready."""
    requested_time = config["request"]["time"]
    account_id = config["account"]["id"]
    if requested_time + READY_AFTER > time.time():
        logger.info(f"Report status for account ID {account_id} is pending")
        return Result(status=StepStatus.pending)
    logger.info(f"Report status for account ID {account_id} is success")
    return config


def get_report(config: dict) -> dict | Result:
    """Retrieves a report; the first report of account 2 times out, which resets."""
    account_id = config["account"]["id"]
    if account_id == 2 and config["request"]["attempt"] == 1:
        report_data = {"status": "error", "msg": "timeout error"}
    else:
        report_data = [
            {"sales": i * 10, "spend": i % 10, "clicks": i * 13}
            for i in range(25 + 25 * account_id)
        ]
    if not isinstance(report_data, list):
        if report_data.get("status") == "error" and report_data.get("msg") == "timeout error":
            logger.warning(f"Timeout error for account ID {account_id}. Resetting.")
            return Result(status=StepStatus.reset)
        raise ValueError(f"Unexpected error: {report_data}")
    logger.info(f"Successfully retrieved report for account ID {account_id} "
                f"with {len(report_data)} rows")
    return {"config": config, "table_data": report_data}


def transform_data(data: dict) -> None:
    """Adds the account's name to each row, in place (returning None passes them on)."""
    config = data["config"]
    table_data = data["table_data"]
    account_name = config["account"]["name"]
    for row in table_data:
        row["account"] = account_name
    logger.info(f"Transformed {len(table_data)} rows of data for account: {account_name}")


def upload_to_db(data: dict) -> None:
    """Handles table upload to database (here: logs the rows)."""
    table_data = data["table_data"]
    account_name = data["config"]["account"]["name"]
    logger.info(f"Uploaded {len(table_data)} rows to the database for account: "
                f"{account_name}")
