"""Experience: the env runner that steps a policy (``runner``), preallocated rollout storage
(``rollout_buffer``), the on-policy batch with advantages (``batch``) and replay (``replay``)."""
