"""Citrix Provisioning: publishing vDisks into a store folder."""
