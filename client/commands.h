// The quiver CLI's commands. Run() returns the process exit code: 0 on
// success, 1 when the server answered with an error, 2 for a usage error.
#ifndef QUIVER_CLIENT_COMMANDS_H_
#define QUIVER_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

namespace quiver::client {

int Run(const std::vector<std::string>& argv);

}  // namespace quiver::client

#endif  // QUIVER_CLIENT_COMMANDS_H_
