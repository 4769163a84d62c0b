"""One input pipeline's share of each global batch, for data-parallel training
(`seglab.engines.distribute` makes them; `seglab.data.pipeline.make_dataset` reads one)."""
from __future__ import annotations

from dataclasses import dataclass

from seglab.core.errors import BadArgument


@dataclass(frozen=True)
class Shard:
    """One input pipeline's share of every global batch (`global_batch` samples, the
    single-process batch): pipeline `index` of `count` takes the `index`-th contiguous slice of
    each and batches it `replica_batch` at a time, one batch for each replica it feeds. So the
    replicas' batches together are the single-process batch, sample for sample, each pipeline
    decodes only its slice, and every pipeline yields the same number of batches (collectives
    need all workers to take every step)."""

    index: int
    count: int
    global_batch: int
    replica_batch: int

    def __post_init__(self):
        if self.global_batch % (self.count * self.replica_batch):
            raise BadArgument(f"a global batch of {self.global_batch} does not split into {self.count} pipeline(s) "
                             f"of {self.replica_batch}-sample batches.")

    @property
    def share(self) -> int:
        """Samples this pipeline takes from each global batch."""
        return self.global_batch // self.count

    @property
    def replicas(self) -> int:
        """Replicas this pipeline feeds (batches it yields per global batch)."""
        return self.share // self.replica_batch

    def keeps(self, position):
        """Whether the sample at `position` of the whole stream is this pipeline's."""
        return (position % self.global_batch) // self.share == self.index

    def offset(self, batch):
        """Where this pipeline's `batch`-th batch starts within its global batch."""
        return self.index * self.share + (batch % self.replicas) * self.replica_batch
