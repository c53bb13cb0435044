"""The algorithms, one module each (``vpg``, ``trpo``, ``ppo``, ``ddpg``, ``td3``, ``sac``), the
two family skeletons they fill in (``onpolicy``, ``offpolicy``) and the registry the command
line finds them in (``registry``)."""
