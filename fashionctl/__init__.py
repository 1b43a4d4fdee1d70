"""fashionctl: the operator command line."""
