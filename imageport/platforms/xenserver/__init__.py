"""XenServer 8 through the vendor's SDK (PyPI ``XenAPI``): session, inventory, snapshot export, marked leftovers."""
