"""What every layer shares: files written whole, progress, processes, the local state folder and the project's own files."""
