"""What ``bench_workers.py``'s worker processes import: hokuro's steps, and each peer's
drain (one module per engine)."""
