"""LiveKit: signed webhooks become stays (sessions) and tracks; reconciliation asks the server.

Use cases (one module each): `add_livekit_account`, `set_livekit_url`, `receive_livekit_webhook`,
`reconcile_livekit`.

Not use cases, shared by them:
- `livekit_stays`: `LiveKitStays`, a track's seconds reaching a stay and a stay's end, shared by
  the webhook and reconciliation.
- `account_book`: the accounts, remembered briefly per API key (every webhook reads its signer's).

`ports.py`: what this area needs from storage and the outside world.
"""
