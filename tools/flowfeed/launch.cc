// launch.cc: `flowfeed launch`, which starts the ranks of a data-parallel run on this host.
//
// main.cc calls RunLaunchCommand() with the words after `flowfeed launch`. Each rank is a child
// process with the variables torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), in a process group of its own so that a terminal's Ctrl-C reaches
// the launcher alone, which passes it on once (a second Ctrl-C would abort the ranks' checkpoint).
//
// When a rank fails, the others normally fail by themselves moments later (their connections to
// it break); whichever are still running after --grace seconds get SIGTERM, then SIGKILL. The
// exit status is the first failing rank's (128 + signal for a signal), 0 when all succeed.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"

namespace flowfeed::cli {

namespace {

volatile sig_atomic_t g_forward = 0;  // a signal to pass on to the ranks (0: none)

extern "C" void OnLauncherSignal(int sig) { g_forward = sig; }

void PrintUsage(std::ostream& out) {
  out << "usage: flowfeed launch [options] -- COMMAND [ARGS...]\n"
         "\n"
         "Starts --nproc ranks of COMMAND on this host. COMMAND may be a flowfeed subcommand\n"
         "(`train configs/x.yaml`), run with this flowfeed binary, or any program.\n"
         "\n"
         "  --nproc N          ranks on this host (default 2)\n"
         "  --nnodes M         hosts in the run (default 1)\n"
         "  --node-rank K      this host's number, 0..M-1 (default 0); ranks are K*N .. K*N+N-1\n"
         "  --master-addr A    address of the host of rank 0 (default 127.0.0.1)\n"
         "  --master-port P    its rendezvous port (default 29500)\n"
         "  --grace S          seconds the other ranks get to stop by themselves after one\n"
         "                     failed, before SIGTERM (default 30)\n";
}

int Usage(const std::string& message) {
  std::cerr << "flowfeed launch: " << message << "\nrun `flowfeed launch --help` for usage\n";
  return 2;
}

bool ParseInt(const std::string& s, long lo, long hi, long* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
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

}  // namespace

int RunLaunchCommand(const std::vector<std::string>& args) {
  long nproc = 2, nnodes = 1, node_rank = 0, port = 29500, grace = 30;
  std::string addr = "127.0.0.1";
  std::vector<std::string> command;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      PrintUsage(std::cout);
      return 0;
    }
    if (a == "--") {
      command.assign(args.begin() + long(i) + 1, args.end());
      break;
    }
    if (i + 1 >= args.size()) return Usage(a + " needs a value (or is unknown)");
    const std::string& v = args[++i];
    bool ok = true;
    if (a == "--nproc") ok = ParseInt(v, 1, 1024, &nproc);
    else if (a == "--nnodes") ok = ParseInt(v, 1, 1 << 16, &nnodes);
    else if (a == "--node-rank") ok = ParseInt(v, 0, 1 << 16, &node_rank);
    else if (a == "--master-port") ok = ParseInt(v, 1, 65535, &port);
    else if (a == "--grace") ok = ParseInt(v, 0, 86400, &grace);
    else if (a == "--master-addr") addr = v;
    else return Usage("unknown option " + a);
    if (!ok) return Usage("bad value for " + a + ": '" + v + "'");
  }
  if (command.empty()) return Usage("no command after --");
  if (node_rank >= nnodes) return Usage("--node-rank must be below --nnodes");
  if (IsFlowfeedSubcommand(command[0])) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return Usage("cannot find this flowfeed binary (/proc/self/exe)");
    self[n] = '\0';
    command.insert(command.begin(), self);
  }

  struct sigaction sa {};
  sa.sa_handler = OnLauncherSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const long world = nproc * nnodes;
  std::vector<pid_t> pids(size_t(nproc), -1);
  std::vector<bool> running(size_t(nproc), false);
  for (long local = 0; local < nproc; ++local) {
    const long rank = node_rank * nproc + local;
    pid_t pid = fork();
    if (pid < 0) {
      std::cerr << "flowfeed launch: fork failed: " << std::strerror(errno) << "\n";
      for (long j = 0; j < local; ++j) kill(pids[size_t(j)], SIGTERM);
      return 1;
    }
    if (pid == 0) {
      setpgid(0, 0);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", addr.c_str(), 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (std::string& w : command) argv.push_back(w.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      std::fprintf(stderr, "flowfeed launch: cannot run %s: %s\n", argv[0], std::strerror(errno));
      _exit(127);
    }
    setpgid(pid, pid);  // also here: whichever runs first
    pids[size_t(local)] = pid;
    running[size_t(local)] = true;
  }
  std::cerr << "flowfeed launch: " << nproc << " rank(s) of " << world << " started, rendezvous "
            << addr << ":" << port << "\n";

  int result = 0;
  long alive = nproc;
  double failed_at = -1, termed_at = -1;
  while (alive > 0) {
    if (g_forward) {
      int sig = g_forward;
      g_forward = 0;
      for (long j = 0; j < nproc; ++j)
        if (running[size_t(j)]) kill(pids[size_t(j)], sig);
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (long j = 0; j < nproc; ++j) {
        if (pids[size_t(j)] != pid || !running[size_t(j)]) continue;
        running[size_t(j)] = false;
        --alive;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok) {
          std::cerr << "flowfeed launch: rank " << node_rank * nproc + j << " " << Describe(status)
                    << "\n";
          if (result == 0) {
            result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            failed_at = Now();
          }
        }
      }
      continue;
    }
    const double now = Now();
    if (failed_at >= 0 && termed_at < 0 && now - failed_at >= double(grace)) {
      std::cerr << "flowfeed launch: " << alive << " rank(s) still running " << grace
                << " s after the failure; sending SIGTERM\n";
      for (long j = 0; j < nproc; ++j)
        if (running[size_t(j)]) kill(pids[size_t(j)], SIGTERM);
      termed_at = now;
    }
    if (termed_at >= 0 && now - termed_at >= 10) {
      for (long j = 0; j < nproc; ++j)
        if (running[size_t(j)]) kill(pids[size_t(j)], SIGKILL);
    }
    usleep(20000);
  }
  return result;
}

}  // namespace flowfeed::cli
