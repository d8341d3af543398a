/* benchmark.hpp: tusk_benchmark (src/benchmark.cpp). */
#pragma once

namespace tusk {

/* tusk.benchmark_progress_interval (from _PG_init). */
void benchmark_define_gucs();

}  // namespace tusk
