"""The Shapes dataset (one triangle and one square, white on black)."""
