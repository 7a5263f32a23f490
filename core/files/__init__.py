"""Model files and safe writes: saving, loading within the loading budget, plugins as
records, atomic writes and the interrupts they hold off."""
