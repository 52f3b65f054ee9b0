"""Transport only: each module turns HTTP into calls on the data plane and back."""
