#include "llm/internal/step_team.h"

#include <omp.h>

namespace quiver::llm::internal {

SpinTeam& StepTeam() {
  static SpinTeam* team = new SpinTeam(omp_get_max_threads());
  return *team;
}

}  // namespace quiver::llm::internal
