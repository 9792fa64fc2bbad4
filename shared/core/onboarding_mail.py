"""The onboarding mail: a person just onboarded learns where to choose what reaches the board.

The seed's business rules: "the system will create a user account automatically and send a mail to
the user to confirm the account and set the preferences". Off unless ONBOARDING_MAIL_FROM names the
mailbox it is sent from (Graph `POST /users/{from}/sendMail`, application permission `Mail.Send`,
granted by the template only then). Pure: builds the message; usecases/admin/resources.py sends it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

SUBJECT = "Your Outlook calendar and the planning board"


def own_page_url(notification_url: str) -> str:
    """The person's own page, `https://<app>/api/console/#/me`, on the host Graph's webhook URL
    names (NOTIFICATION_URL is this app's public address); its query (the function key) is dropped."""
    parts = urlsplit(notification_url)
    return urlunsplit((parts.scheme, parts.netloc, "/api/console/", "", "/me"))


def onboarding_message(recipient: str, name: str, link: str) -> dict[str, Any]:
    """Graph's sendMail body: plain text (nothing of the recipient's is interpreted as markup), not
    saved to the sender's Sent Items."""
    greeting = f"Hello {name}," if name else "Hello,"
    text = "\n\n".join(
        (
            greeting,
            "your Outlook calendar is now connected to the Dime.Scheduler planning board, so planners see when"
            " you are busy and their appointments for you appear in your calendar.",
            f"Choose what is shared (and see what the board will show of your next week) here:\n{link}",
            "Sign in with your work account. An administrator may have set some choices for you; the page says so.",
        )
    )
    return {
        "message": {
            "subject": SUBJECT,
            "body": {"contentType": "Text", "content": text},
            "toRecipients": [{"emailAddress": {"address": recipient}}],
        },
        "saveToSentItems": False,
    }
