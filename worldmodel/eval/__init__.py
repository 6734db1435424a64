"""Evaluation: representation probes, rollout error, closed-loop control."""
