"""Environments: making and checking them (``make``), batched stepping (``vector``), their state
as plain data for checkpoints (``state``) and observation normalisation (``normalize``)."""
