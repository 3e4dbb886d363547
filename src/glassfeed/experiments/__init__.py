"""Online experiments (issue 18): arms, assignment, exposure, analysis, guardrails (docs/experiments.md)."""
