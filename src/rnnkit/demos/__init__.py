"""Small self-contained demonstrations run by ``rnnkit demo``."""
