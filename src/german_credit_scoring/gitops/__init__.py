"""GitOps integration: what a pull request reviewed is what main ships.

- `lock`: DVC's own hashes, and the check that a pull request's committed ``dvc.lock`` is what CI reproduced.
- `handover`: the reviewed release (bento, model, lineage) handed from the pull request's run to main.
"""
