"""The toy world (a sibling package of merge3's rooms): tiny models, tasks and real lm-eval logs for
the demo, the tests and the benchmarks. It uses the method (`merge3_plugin`), the lm-eval room and
mergekit; nothing in those imports it (tests/test_architecture.py checks). `merge3 zoo ...` comes in
through the `merge3_add_commands` hook (`commands.py`)."""
