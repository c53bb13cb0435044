"""The run machinery, free of any algorithm and of any environment runner: the epoch loop
(``loop``), the run folder (``folder``), checkpoints (``checkpoint``), the progress bar
(``progress``), evaluation episodes and videos (``evaluate``), plots (``plot``) and output-file
checks (``outputs``). Supervised training reuses it as it is (see ``loop.Training``)."""
