"""Downstream use of a frozen encoder: probes, few-shot episodes, fine-tuning baselines."""
