"""Creator analytics, "why did my post travel" (docs/creators.md)."""
