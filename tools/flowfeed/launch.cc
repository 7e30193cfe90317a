// launch.cc: `flowfeed launch`, which starts the ranks of a data-parallel run on this host.
//
// AddLaunchCommand() (cli.h) registers the subcommand and its options, torchrun's spellings
// included (--nproc-per-node, --node_rank, --standalone, ...). Each rank is a child process with
// the variables torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), in a process group of its own so that a terminal's Ctrl-C reaches the launcher
// alone, which passes it on once (a second Ctrl-C would abort the ranks' checkpoint).
//
// When a rank fails, the others normally fail by themselves moments later (their connections to
// it break); whichever are still running after --grace seconds get SIGTERM, then SIGKILL. The
// exit status is the first failing rank's (128 + signal for a signal), 0 when all succeed; 2 for
// bad usage, before anything started.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"

namespace flowfeed::cli {

namespace {

volatile sig_atomic_t g_forward = 0;  // a signal to pass on to the ranks (0: none)

extern "C" void OnLauncherSignal(int sig) { g_forward = sig; }

struct LaunchArgs {
  long nproc = 2, nnodes = 1, node_rank = 0, port = 29500, grace = 30;
  std::string addr = "127.0.0.1";
  bool standalone = false;
  std::vector<std::string> command;
  // Whether they were given: --standalone refuses them.
  CLI::Option *addr_given = nullptr, *port_given = nullptr;
};

int Usage(const std::string& message) {
  std::cerr << "flowfeed launch: " << message << "\nrun `flowfeed launch --help` for usage\n";
  return kExitUsage;
}

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::string Describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

bool IsFlowfeedSubcommand(const std::string& word) {
  return word == "train" || word == "bench" || word == "validate";
}

// A loopback TCP port nobody listens on now (the kernel's pick for port 0), or 0. Rank 0 binds
// it moments later; another process could take it in between, as with torchrun's
// --standalone, and the rendezvous then fails naming the address.
long FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  long port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// torchrun's --standalone, for a launcher without a rendezvous service: one node (node rank 0),
// rank 0 on this host's loopback, on a free port instead of the fixed 29500, so that several
// single-node runs on one host do not collide. What it decides, it refuses to be told.
int ApplyStandalone(LaunchArgs* a) {
  if (a->nnodes > 1)
    return Usage("--standalone runs a single node; it cannot be combined with --nnodes " +
                 std::to_string(a->nnodes) + " (drop --standalone and give --master-addr for " +
                 "several hosts)");
  if (a->node_rank > 0)
    return Usage("--standalone runs a single node; it cannot be combined with --node-rank " +
                 std::to_string(a->node_rank));
  if (*a->addr_given || *a->port_given)
    return Usage(
        "--standalone picks the rendezvous itself (127.0.0.1 and a free port); it "
        "cannot be combined with --master-addr or --master-port");
  a->port = FreeLoopbackPort();
  if (a->port == 0) {
    std::cerr << "flowfeed launch: --standalone: no free loopback port: " << std::strerror(errno)
              << "\n";
    return kExitRuntime;
  }
  return kExitOk;
}

// Forks a.nproc ranks running `command` into `pids`; false (the ones started sent SIGTERM) when
// a fork fails.
bool StartRanks(const LaunchArgs& a, std::vector<std::string> command, std::vector<pid_t>* pids) {
  const long world = a.nproc * a.nnodes;
  for (long local = 0; local < a.nproc; ++local) {
    const long rank = a.node_rank * a.nproc + local;
    pid_t pid = fork();
    if (pid < 0) {
      std::cerr << "flowfeed launch: fork failed: " << std::strerror(errno) << "\n";
      for (pid_t started : *pids) kill(started, SIGTERM);
      return false;
    }
    if (pid == 0) {
      setpgid(0, 0);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(a.nproc).c_str(), 1);
      setenv("MASTER_ADDR", a.addr.c_str(), 1);
      setenv("MASTER_PORT", std::to_string(a.port).c_str(), 1);
      std::vector<char*> argv;
      for (std::string& w : command) argv.push_back(w.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      std::fprintf(stderr, "flowfeed launch: cannot run %s: %s\n", argv[0], std::strerror(errno));
      _exit(127);
    }
    setpgid(pid, pid);  // also here: whichever runs first
    pids->push_back(pid);
  }
  std::cerr << "flowfeed launch: " << a.nproc << " rank(s) of " << world << " started, rendezvous "
            << a.addr << ":" << a.port << "\n";
  return true;
}

// Waits for the ranks, passing on a signal the launcher got and ending the rest --grace seconds
// after one failed; the exit status (see the file comment).
int Supervise(const LaunchArgs& a, const std::vector<pid_t>& pids) {
  const size_t nproc = pids.size();
  std::vector<bool> running(nproc, true);
  int result = 0;
  size_t alive = nproc;
  double failed_at = -1, termed_at = -1;
  const auto signal_running = [&](int sig) {
    for (size_t j = 0; j < nproc; ++j)
      if (running[j]) kill(pids[j], sig);
  };
  while (alive > 0) {
    if (g_forward) {
      int sig = g_forward;
      g_forward = 0;
      signal_running(sig);
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t j = 0; j < nproc; ++j) {
        if (pids[j] != pid || !running[j]) continue;
        running[j] = false;
        --alive;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok) {
          std::cerr << "flowfeed launch: rank " << a.node_rank * a.nproc + long(j) << " "
                    << Describe(status) << "\n";
          if (result == 0) {
            result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            failed_at = Now();
          }
        }
      }
      continue;
    }
    const double now = Now();
    if (failed_at >= 0 && termed_at < 0 && now - failed_at >= double(a.grace)) {
      std::cerr << "flowfeed launch: " << alive << " rank(s) still running " << a.grace
                << " s after the failure; sending SIGTERM\n";
      signal_running(SIGTERM);
      termed_at = now;
    }
    if (termed_at >= 0 && now - termed_at >= 10) signal_running(SIGKILL);
    usleep(20000);
  }
  return result;
}

int Launch(LaunchArgs& a) {
  if (a.command.empty())
    return Usage("no command (flowfeed launch [options] -- COMMAND [ARGS...])");
  if (a.standalone) {
    if (int rc = ApplyStandalone(&a); rc != kExitOk) return rc;
  } else if (a.node_rank >= a.nnodes) {
    return Usage("--node-rank must be below --nnodes");
  }
  std::vector<std::string> command = a.command;
  if (IsFlowfeedSubcommand(command[0])) {
    const std::string self = ProgramPath();
    if (self.empty()) return Usage("cannot find this flowfeed binary (/proc/self/exe)");
    command.insert(command.begin(), self);
  }

  struct sigaction sa {};
  sa.sa_handler = OnLauncherSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::vector<pid_t> pids;
  if (!StartRanks(a, std::move(command), &pids)) return kExitRuntime;
  return Supervise(a, pids);
}

}  // namespace

Subcommand AddLaunchCommand(CLI::App* program) {
  auto args = std::make_shared<LaunchArgs>();
  CLI::App* cmd = program->add_subcommand(
      "launch",
      "Start N ranks of a command with RANK/WORLD_SIZE/... set, like torchrun (see: flowfeed "
      "launch --help)");
  cmd->footer(
      "Starts --nproc ranks of COMMAND on this host. COMMAND may be a flowfeed subcommand\n"
      "(`train configs/x.yaml`), run with this flowfeed binary, or any program; it goes after\n"
      "`--` (as with torchrun, it may also follow the options directly). Everything after it\n"
      "reaches COMMAND untouched, options included.");
  // After the first word of COMMAND everything is COMMAND's, even words that look like ours.
  cmd->positionals_at_end();
  cmd->add_option("--nproc,--nproc-per-node,--nproc_per_node", args->nproc, "ranks on this host")
      ->check(CLI::Range(1L, 1024L))
      ->capture_default_str();
  cmd->add_option("--nnodes", args->nnodes, "hosts in the run")
      ->check(CLI::Range(1L, 1L << 16))
      ->capture_default_str();
  cmd->add_option("--node-rank,--node_rank", args->node_rank,
                  "this host's number, 0..M-1; ranks are K*N .. K*N+N-1")
      ->check(CLI::Range(0L, 1L << 16))
      ->capture_default_str();
  args->addr_given =
      cmd->add_option("--master-addr,--master_addr", args->addr, "address of the host of rank 0")
          ->capture_default_str();
  args->port_given =
      cmd->add_option("--master-port,--master_port", args->port, "its rendezvous port")
          ->check(CLI::Range(1L, 65535L))
          ->capture_default_str();
  cmd->add_flag("--standalone", args->standalone,
                "one host (--nnodes 1, --node-rank 0), rendezvous on 127.0.0.1 at a free port "
                "instead of --master-addr/--master-port");
  cmd->add_option("--grace", args->grace,
                  "seconds the other ranks get to stop by themselves after one failed, before "
                  "SIGTERM")
      ->check(CLI::Range(0L, 86400L))
      ->capture_default_str();
  cmd->add_option("command", args->command, "COMMAND [ARGS...], after --");
  return {cmd, [args] { return Launch(*args); }};
}

}  // namespace flowfeed::cli
