"""Small consumers built on `common`: the shortest honest examples of the runtime."""
