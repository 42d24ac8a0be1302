"""Nutanix AHV through Prism Central v4: session, inventory, tasks, the image download, the export."""
