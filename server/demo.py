"""Demo data showing every eligibility outcome that data alone can produce.

``call_already_active`` and ``rate_limited`` depend on calls made at run time, so no
seeded thread shows them; start a call (or several) on the eligible thread to see them.
Seeding is idempotent: running it again resets the demo rows to their seeded state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.clock import utcnow
from server.db.migrate import upgrade_to_head_async
from server.db.models import Block, Message, Thread, User
from server.db.session import make_engine, make_session_factory
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class DemoThread:
    id: str
    seller_id: str
    buyer_id: str
    subject: str
    expected: str  # the reason code the seller sees, or "allowed"
    initiated_by: str = "buyer"
    state: str = "open"
    order_placed: bool = False
    days_since_buyer_activity: int = 1


def demo_users() -> list[User]:
    return [
        User(id="seller-sam", role="seller", display_name="Sam Seller", business_program="member"),
        User(
            id="seller-ivy", role="seller", display_name="Ivy Invited", business_program="invited"
        ),
        User(id="buyer-vera", role="buyer", display_name="Vera VID", vid=True),
        User(id="buyer-bob", role="buyer", display_name="Bob Buyer", vid=False),
        User(
            id="buyer-rita", role="buyer", display_name="Rita Restricted", vid=True, restricted=True
        ),
        User(id="buyer-bea", role="buyer", display_name="Bea Blocker", vid=True),
        User(id="reviewer-rey", role="reviewer", display_name="Rey Reviewer"),
        User(id="admin-ada", role="admin", display_name="Ada Admin"),
    ]


DEMO_THREADS: tuple[DemoThread, ...] = (
    DemoThread(
        "t-eligible", "seller-sam", "buyer-vera", "Brand video for a product launch", "allowed"
    ),
    DemoThread(
        "t-not-member",
        "seller-ivy",
        "buyer-vera",
        "Podcast editing",
        "seller_not_in_business_program",
    ),
    DemoThread("t-not-vid", "seller-sam", "buyer-bob", "Landing page copy", "buyer_not_vid"),
    DemoThread(
        "t-restricted", "seller-sam", "buyer-rita", "Mobile app prototype", "account_restricted"
    ),
    DemoThread(
        "t-seller-started",
        "seller-sam",
        "buyer-vera",
        "Follow-up offer",
        "thread_not_buyer_initiated",
        initiated_by="seller",
    ),
    DemoThread(
        "t-ordered",
        "seller-sam",
        "buyer-vera",
        "Logo redesign (ordered)",
        "thread_has_order",
        order_placed=True,
    ),
    DemoThread(
        "t-stale",
        "seller-sam",
        "buyer-vera",
        "Old question about SEO",
        "thread_not_active",
        days_since_buyer_activity=40,
    ),
    DemoThread(
        "t-closed",
        "seller-sam",
        "buyer-vera",
        "Closed enquiry",
        "thread_not_active",
        state="closed",
    ),
    DemoThread("t-blocked", "seller-sam", "buyer-bea", "Translation job", "buyer_blocked_seller"),
)


async def seed(session: AsyncSession) -> None:
    now = utcnow()
    for user in demo_users():
        await session.merge(user)
    for spec in DEMO_THREADS:
        await session.merge(
            Thread(
                id=spec.id,
                seller_id=spec.seller_id,
                buyer_id=spec.buyer_id,
                subject=spec.subject,
                initiated_by=spec.initiated_by,
                state=spec.state,
                order_placed=spec.order_placed,
                last_buyer_activity_at=now - timedelta(days=spec.days_since_buyer_activity),
            )
        )
        first_message_id = f"{spec.id}-m1"
        if await session.get(Message, first_message_id) is None:
            session.add(
                Message(
                    id=first_message_id,
                    thread_id=spec.id,
                    sender_id=spec.buyer_id if spec.initiated_by == "buyer" else spec.seller_id,
                    text=f"Hi! I'd like to talk about: {spec.subject}.",
                    flags=[],
                    created_at=now - timedelta(days=spec.days_since_buyer_activity),
                )
            )
    await session.merge(Block(buyer_id="buyer-bea", seller_id="seller-sam"))


async def seed_demo(settings: Settings) -> str:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_to_head_async(url)
    engine = make_engine(url)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            await seed(session)
    finally:
        await engine.dispose()
    lines = ["Seeded demo data. Threads, as seen by their seller:"]
    lines += [f"  {t.id:<18} {t.expected}" for t in DEMO_THREADS]
    return "\n".join(lines)
