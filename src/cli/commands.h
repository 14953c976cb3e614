/*
 * commands.h - the `vigil` subcommands.  Each takes the arguments after its
 * own name (argv[0] is the subcommand name), prints its own --help, and
 * returns the process exit status: 0 success, 1 failure, 2 usage error.
 */
#ifndef VIGIL_CLI_COMMANDS_H
#define VIGIL_CLI_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_detect(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_edge(int argc, char **argv);
int cmd_device(int argc, char **argv);
int cmd_health(int argc, char **argv);

#endif
