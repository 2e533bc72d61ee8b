"""Multilateral set-off (MTCS) of obligations between co-ops: a pure engine and a file mode."""
