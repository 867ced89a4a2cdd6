"""A short tour of the SDK against the in-process emulator (no network, no key needed).

python examples/quickstart.py
"""

from __future__ import annotations

import datetime as dt

import anyio

from activatepro_async import AsyncClient, NotFoundError, User
from activatepro_async.emulator import Emulator


async def main() -> None:
    emulator = Emulator(api_keys=["demo-key"])
    async with AsyncClient("demo-key", transport=emulator.transport()) as client:
        ada = User(
            "42",
            "ada@example.com",
            business_unit="UK",
            attributes={"firstName": "Ada", "birthday": dt.date(1815, 12, 10)},
        )
        accepted = await client.upsert_user(ada)
        print(f"upsert accepted, tracking id {accepted.tracking_id}")
        status = await client.wait_for_tracking(accepted.tracking_id, poll_interval=0.01)
        print(f"tracking: {status.stage.value}, {status.success} of {status.total} stored")

        stored = await client.get_user("42")
        print(f"stored: {stored.id} {stored.email} {stored.attributes}")
        by_email = await client.get_user_by_email("ADA@example.com", "UK")
        print(f"found by email (case insensitive): {by_email.id}")

        batch = await client.batch(
            updated=[User("43", "grace@example.com"), User("44", "not-an-email")],
            deleted=["42"],
        )
        for error in batch.errors:
            print(f"batch item refused: {error}")
        status = await client.wait_for_tracking(batch.tracking_id, poll_interval=0.01)
        print(f"batch: {status.success} done, {status.error} failed of {status.total}")

        try:
            await client.get_user("42")
        except NotFoundError:
            print("user 42 is gone, as asked")


if __name__ == "__main__":
    anyio.run(main)
