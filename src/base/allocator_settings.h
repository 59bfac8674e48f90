// How freed tensor memory goes back to the allocator. A training step allocates and frees the
// same large activations every time; glibc's defaults hand blocks over 128 KiB back to the
// kernel at once (mmap/munmap, then a page fault per 4 KiB page on the next step). Keeping
// them in the heap for reuse made the medium training step 13 % faster here (BENCHMARKS.md).
#pragma once

namespace mops {

// Blocks up to 32 MiB (glibc's maximum) come from the heap, and the heap is returned to the
// kernel only when over 1 GiB of it is free. Call once, before the first tensor.
void keep_freed_memory_for_reuse();

}  // namespace mops
