"""The script language (buelon's `.bue` files): grammar, compiler to plans, SQL steps."""
