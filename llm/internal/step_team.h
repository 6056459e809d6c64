// The threads that run a decode step's loops (internal to llm/).
#ifndef QUIVER_LLM_INTERNAL_STEP_TEAM_H_
#define QUIVER_LLM_INTERNAL_STEP_TEAM_H_

#include <cstdint>

#include "common/spin_team.h"

namespace quiver::llm::internal {

// The process's team for steps: its workers spin between a step's loops,
// where each OpenMP parallel region (some fifty a decode step) cost a fork
// and a join of tens of microseconds once libgomp throttled its spinning
// (common/spin_team.h). Sized like the OpenMP team (OMP_NUM_THREADS, else
// the cores). Never destroyed: a step may still run while the process exits.
SpinTeam& StepTeam();

// Runs body(i) for i in [0, n): on the step team when `parallel`, else on
// this thread alone (an OpenMP `if` clause still entered libgomp on every
// call, and stories260K's steps spent more there than in their products:
// one stream 6.4-7.9k -> 12-13.5k tokens/s). When the team is busy with
// another thread's loop (two models stepping at once), OpenMP runs it.
// Nothing in a step may use OpenMP otherwise: a libgomp team spinning
// beside the step team's workers halves what each gets of the cores.
template <bool kDynamic, typename Index, typename Body>
void ForEachIndex(bool parallel, Index n, const Body& body) {
  if (!parallel) {
    for (Index i = 0; i < n; ++i) body(i);
    return;
  }
  const auto schedule = kDynamic ? SpinTeam::Schedule::kDynamic : SpinTeam::Schedule::kStatic;
  if (StepTeam().ParallelFor(static_cast<int64_t>(n), schedule,
                             [&body](int64_t i) { body(static_cast<Index>(i)); })) {
    return;
  }
  if constexpr (kDynamic) {
#pragma omp parallel for schedule(dynamic)
    for (Index i = 0; i < n; ++i) body(i);
  } else {
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < n; ++i) body(i);
  }
}

}  // namespace quiver::llm::internal

#endif  // QUIVER_LLM_INTERNAL_STEP_TEAM_H_
