"""Plans, subscriptions, free trials and quotas: what a subject may start.

Use cases (one module each): `set_plan`, `subscribe`, `register_resource`, `get_limits`,
`get_trial_status`, `list_plans`, `get_plan`, `list_subscriptions`, `report_trials`.

Not use cases, shared by them:
- `plan_of_subject`: which plan governs a subject at an instant (also asked by `start_session`).

`ports.py`: what this area needs from storage and the outside world.
"""
