"""The onboarding mail: the link to the person's own page, on the app's host, never its key."""

from __future__ import annotations

from shared.core.onboarding_mail import onboarding_message, own_page_url


def test_the_link_is_the_apps_own_page_without_the_function_key():
    url = own_page_url("https://dimecal-ab12.azurewebsites.net/api/notifications?code=secret-function-key")
    assert url == "https://dimecal-ab12.azurewebsites.net/api/console/#/me"


def test_the_message_is_plain_text_to_the_person_and_not_kept_in_sent_items():
    body = onboarding_message("jane@contoso.com", "<b>Jane</b>", "https://app/api/console/#/me")
    message = body["message"]
    assert message["toRecipients"] == [{"emailAddress": {"address": "jane@contoso.com"}}]
    assert message["body"]["contentType"] == "Text"  # a hostile display name stays text
    assert message["body"]["content"].startswith("Hello <b>Jane</b>,")
    assert "https://app/api/console/#/me" in message["body"]["content"] and body["saveToSentItems"] is False
    assert onboarding_message("j@contoso.com", "", "x")["message"]["body"]["content"].startswith("Hello,")
