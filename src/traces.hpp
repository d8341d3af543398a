/*
 * traces.hpp: spans (tusk_trace_start / tusk_trace_end), each recorded as
 * the histogram "<operation>_duration" in milliseconds, and the tusk_traces
 * view of the most recent completed spans, kept in a bounded ring in shared
 * memory (tusk.max_traces). The rules are in traces.cpp's header comment.
 */
#pragma once

namespace tusk {

/* tusk.max_traces (server start). Call from _PG_init. */
void traces_define_gucs();
/* From shmem_request_hook: the ring's memory and its LWLock tranche ("tusk traces"). */
void traces_request_shmem();
/* From shmem_startup_hook: creates (postmaster) or attaches to the ring. */
void traces_startup_shmem();

}  // namespace tusk
