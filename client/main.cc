// quiver: the Quiver admin CLI. `quiver help` lists the commands.
#include <string>
#include <vector>

#include "client/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return quiver::client::Run(args);
}
