// The flowfeed command line: bench, train, report, validate, config, stages, options, dataset,
// launch.
// This file parses the command line and calls the command (cli.h names the file of each);
// `dataset` and `launch` register their own options (AddDatasetCommand, AddLaunchCommand).
//
// Exit codes: 0 success, 2 bad usage or config (nothing ran), 1 failure while running, 128 + the
// signal's number for a run a signal stopped, 70 when a stage called exit() (crash_report.h).
// A fatal signal (a crashing plugin) still ends the process by that signal, after one line per
// pipeline thread naming its stage, plugin and sample on stderr.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli.h"
#include "terminal_text.h"
#include "flowfeed/config.h"
#include "flowfeed/crash_report.h"
#include "flowfeed/version.h"

namespace {

using flowfeed::cli::kExitOk;
using flowfeed::cli::kExitRuntime;
using flowfeed::cli::kExitUsage;
using flowfeed::cli::RunArgs;

// The options `bench` and `train` share, into `args`.
CLI::App* AddRunCommand(CLI::App* app, const char* name, const char* what, RunArgs* args) {
  CLI::App* cmd = app->add_subcommand(name, what);
  cmd->add_option("config", args->config, "YAML config")->required();
  cmd->add_option("--epochs", args->epochs, "Override the config's epochs")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--report", args->report, "Write a JSON report to this file");
  cmd->add_option("--set", args->sets, "Override a config key: key.path=value (repeatable)");
  cmd->add_option("--trace", args->trace, "Write a Chrome trace (Perfetto) of the run to this file");
  cmd->add_option("--html", args->html, "Write the report as an HTML page with charts to this file");
  cmd->add_option("--tensorboard", args->tensorboard,
                  "Write TensorBoard scalars (per step and per epoch) to an event file in this folder");
  cmd->add_option("--jsonl", args->jsonl,
                  "Append per-step and per-epoch records to this JSON Lines file");
  cmd->add_option("--csv", args->csv, "Write steps.csv and epochs.csv into this folder");
  return cmd;
}

// The program's arguments as one line, quoted where a shell would need it, so that the line in a
// report's provenance can be pasted back.
std::string CommandLine(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    const bool plain = !a.empty() && a.find_first_not_of(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") ==
        std::string::npos;
    if (!plain) {
      std::string q = "'";
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      a = q + "'";
    }
    line += (i ? " " : "") + a;
  }
  return line;
}

struct ReportArgs {
  std::vector<std::string> files, labels;
  std::string output, title;
};

CLI::App* AddReportCommand(CLI::App* app, ReportArgs* args) {
  CLI::App* cmd = app->add_subcommand(
      "report", "Draw JSON reports (bench/train --report) as one HTML page; two or more overlay");
  cmd->add_option("reports", args->files, "JSON reports")->required();
  cmd->add_option("-o,--output", args->output,
                  "The HTML file (default: the first report's name with .html)");
  cmd->add_option("--label", args->labels,
                  "Name of each report in the page, in order (default: file names)");
  cmd->add_option("--title", args->title, "The page's title");
  return cmd;
}

// A word where a command goes that names none (`flowfeed bnech`, `flowfeed dataset photo`): says
// which one was meant and returns true. (CLI11 alone would only say that a subcommand is
// required, or that the word was not expected.) Descends only into commands that require a
// subcommand, so that a command's own positionals are left to CLI11.
bool RefuseUnknownCommand(CLI::App& app, int argc, char** argv) {
  const CLI::App* at = &app;
  std::string path = "flowfeed";
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    if (at != &app && at->get_require_subcommand_min() == 0) return false;
    std::vector<std::string> names;
    for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
      names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), argv[i]) == names.end()) {
      const std::string guess = flowfeed::ClosestMatch(argv[i], names);
      std::cerr << path << ": unknown command '" << argv[i] << "'"
                << (guess.empty() ? "" : "; did you mean '" + guess + "'?") << " (commands: ";
      for (size_t j = 0; j < names.size(); ++j) std::cerr << (j ? ", " : "") << names[j];
      std::cerr << ")\n";
      return true;
    }
    at = at->get_subcommand(argv[i]);
    path += std::string(" ") + argv[i];
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = flowfeed::cli;
  cli::EscapeControlBytesInOutput();  // names printed anywhere below cannot drive the terminal
  // Before anything runs a stage. The default action afterwards, not a sanitizer's handler, so
  // that the exit status is the signal's in every build.
  flowfeed::CrashReportOptions crash;
  crash.chain = false;
  const flowfeed::Status installed = flowfeed::InstallCrashReport(crash);
  if (!installed.ok()) std::cerr << "flowfeed: warning: " << installed.message() << "\n";
  CLI::App app{"flowfeed: a data pipeline for deep-learning training"};
  app.set_version_flag("--version", std::string("flowfeed ") + FLOWFEED_VERSION);
  app.require_subcommand(1);

  RunArgs run;
  run.command_line = CommandLine(argc, argv);
  CLI::App* bench =
      AddRunCommand(&app, "bench", "Run the pipeline alone and report each epoch", &run);
  bench->add_flag("--cold", run.cold,
                  "Evict the dataset's files (and the disk cache) from the OS page cache before "
                  "epoch 1, so it measures storage reads");
  CLI::App* train = AddRunCommand(&app, "train", "Train the config's model on its pipeline", &run);
  train->add_option("--resume", run.resume,
                    "Continue from this checkpoint (refused if it is damaged, or if the config "
                    "changed the data, sampler, pipeline, optimizer or model it records)");
  train->add_flag("--resume-changed", run.resume_changed,
                  "With --resume: continue although the config changed what the checkpoint "
                  "records (not the model), listing the changes as a warning");
  train->add_flag("--cold", run.cold, "Evict the dataset's files from the page cache first");

  ReportArgs report;
  CLI::App* report_cmd = AddReportCommand(&app, &report);

  CLI::App* validate = app.add_subcommand(
      "validate",
      "Check a config, load its plugins and open its datasets (listed, headers read), without "
      "running it");
  validate->add_option("config", run.config, "YAML config")->required();
  validate->add_option("--set", run.sets, "Override a config key: key.path=value (repeatable)");
  bool schema_only = false;
  validate->add_flag("--schema-only", schema_only,
                     "Check the config and its plugins only; do not open the datasets");

  CLI::App* config_cmd = app.add_subcommand(
      "config", "Print a config as a run reads it: overrides applied, checked like validate");
  config_cmd->add_option("config", run.config, "YAML config")->required();
  config_cmd->add_option("--set", run.sets, "Override a config key: key.path=value (repeatable)");
  config_cmd->add_flag("--schema-only", schema_only,
                       "Check the config and its plugins only; do not open the datasets");

  CLI::App* stages = app.add_subcommand(
      "stages", "List the stage types and their parameters, then the source types and their keys");
  std::vector<std::string> plugin_files;
  stages->add_option("--plugins", plugin_files,
                     "Plugin files whose stages to list too (looked for as a config's plugins: "
                     "entries are, from the current directory)");
  CLI::App* options_cmd =
      app.add_subcommand("options", "Print the config key reference (docs/config.md's key tables)");
  const cli::Subcommand dataset = cli::AddDatasetCommand(&app);
  const cli::Subcommand launch = cli::AddLaunchCommand(&app);

  if (RefuseUnknownCommand(app, argc, argv)) return kExitUsage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (*bench) return cli::Bench(run);
    if (*train) return cli::Train(run);
    if (*report_cmd) return cli::Report(report.files, report.output, report.labels, report.title);
    if (*validate) return cli::Validate(run.config, run.sets, schema_only);
    if (*config_cmd) return cli::PrintConfig(run.config, run.sets, schema_only);
    if (*stages) return cli::Stages(plugin_files);
    if (*dataset.app) return dataset.run();
    if (*launch.app) return launch.run();
    if (*options_cmd) {
      std::cout << flowfeed::ConfigReference();
      return kExitOk;
    }
  } catch (const std::bad_alloc&) {
    // Every config value is bounded, so this is the machine's memory, not a setting gone wild.
    std::cerr << "flowfeed: out of memory: the run needs more memory than this machine can give; "
                 "lower batch.size, prefetch, threads or cache.budget\n";
    return kExitRuntime;
  } catch (const std::exception& e) {
    std::cerr << "flowfeed: internal error: " << e.what() << "\n";
    return kExitRuntime;
  }
  return kExitUsage;
}
