"""Networks: MLP bodies and fast paths (``mlp``), on-policy actor-critics (``actor_critic``),
deterministic and tanh-Gaussian actors with ensembled critics (``offpolicy``)."""
