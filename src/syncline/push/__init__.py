"""syncline push: write changes made to the mirror back to the API."""
