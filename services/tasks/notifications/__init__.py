"""User notifications: per-user rules, webhooks, the history and deliveries (docs/notifications.md).

kinds.py      the event kinds users are told about, read from the events that announce them
rules.py      which channels tell a user about which kind
webhooks.py   webhook URLs (the SSRF check), their secrets, signing and the HTTP POST
history.py    a notification per (event, user) with a pending delivery per channel; the list
delivery.py   one delivery, once, with its outcome recorded; the sweep of stuck ones
mail.py       the mail of a notification
"""
