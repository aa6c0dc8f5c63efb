/* finetune: graft a new head onto a frozen trunk and train it, as the PyTorch
 * transfer-learning tutorial does. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/common.h"
#include "apps/finetune/run.h"
#include "apps/finetune/config.h"

static const char usage[] =
    "usage: finetune [--restart] CONFIG.h5\n"
    "       finetune --init CONFIG.h5 --arch A --weights W --data D [--SETTING VALUE ...]\n"
    "       finetune --show CONFIG.h5\n"
    "\n"
    "Train the classifier of a pretrained AlexNet or VGG16 (a graft-weights file, or a\n"
    "Keras VGG16 weights file with or without its top) on an ImageFolder\n"
    "(DATA/train/<class>/*, DATA/val/<class>/*) with the trunk frozen.\n"
    "Running the same config again resumes from OUTPUT/last.h5.\n"
    "\n"
    "  --restart        start over, ignoring an earlier run's last.h5\n"
    "  --init CONFIG    write a config from the settings given as --name value\n"
    "  --show CONFIG    print a config's settings, defaults included\n"
    "  -q, --quiet      no progress bar\n"
    "  -h, --help       this text\n"
    "  -V, --version    version\n"
    "\n"
    "Settings (config attributes; defaults are the tutorial's recipe):\n"
    "  arch             alexnet | vgg16 (required)\n"
    "  weights          pretrained weights (graft-weights, Keras, .pth or safetensors),\n"
    "                   relative to the config's folder (required)\n"
    "  data             ImageFolder root with train/ and val/ (required)\n"
    "  output           run folder (default runs/<config name> beside the config)\n"
    "  epochs 25  batch_size 4  lr 0.001  momentum 0.9  weight_decay 0\n"
    "  step_size 7  gamma 0.1   (StepLR, per epoch)\n"
    "  trainable        classifier (every Linear) | head (the last Linear only)\n"
    "  new_head 1       1: a new last Linear with one output per class; 0: keep the file's\n"
    "  dropout 0.5      dropout probability in the classifier while training\n"
    "  augment          tutorial (RandomResizedCrop + flip) | none (the eval transform)\n"
    "  shuffle 1  seed 0\n"
    "  cache_features   auto (on when augment is none) | on | off\n"
    "  device           auto | cpu | cuda[:N]      precision  fp32 | fp32-strict | bf16\n"
    "  threads 0        CPU threads, 0 = all cores\n"
    "  save_every 60    seconds between saves of best.h5 and last.h5 (0: every epoch)\n"
    "\n"
    "Writes to OUTPUT: best.h5 (the best validation accuracy, usable by classify -w),\n"
    "last.h5 (to resume), metrics.csv and curves.png. SIGINT/SIGTERM stop after the\n"
    "current batch, saving best.h5 and last.h5 (exit 130).\n"
    "Exit status: 0 done, 1 training failed, 2 usage, config, data or weights error,\n"
    "130 interrupted.\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

typedef struct ui {
  bool bar;     /* progress bar on stderr */
  bool started; /* set-up done: later failures are training failures */
  bool bar_shown;
  int stop_epoch, stop_batch; /* GRAFT_STOP_AT=E:B raises SIGINT there (for tests) */
  int crash_epoch, crash_batch; /* GRAFT_CRASH_AT=E:B raises SIGKILL there (for tests) */
  int batch_size;
} ui;

static void clear_bar(ui *u) {
  if (u->bar_shown) {
    fputs("\r\033[K", stderr);
    u->bar_shown = false;
  }
}

static void on_progress(void *user, const char *phase, int epoch, int epochs, int done,
                        int total, double loss) {
  ui *u = user;
  if (u->stop_epoch == epoch && strcmp(phase, "train") == 0 &&
      done >= u->stop_batch * u->batch_size) {
    u->stop_epoch = 0; /* once: a second signal stops at once */
    raise(SIGINT);     /* the real signal path: handler, flag, checkpoint */
  }
  if (u->crash_epoch == epoch && strcmp(phase, "train") == 0 &&
      done >= u->crash_batch * u->batch_size)
    raise(SIGKILL); /* a crash: nothing saved, whatever is being written cut off */
  if (!u->bar) return;
  enum { WIDTH = 30 };
  int fill = total ? done * WIDTH / total : WIDTH;
  char bar[WIDTH + 1];
  for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
  bar[WIDTH] = '\0';
  fprintf(stderr, "\r\033[Kepoch %d/%d %-5s [%s] %d/%d loss %.4f", epoch, epochs, phase, bar,
          done, total, loss);
  fflush(stderr);
  u->bar_shown = true;
}

static void on_started(void *user) { ((ui *)user)->started = true; }

static void on_epoch(void *user, const graft_epoch_metrics *m) {
  clear_bar(user);
  printf("===================================================\n");
  printf("epoch:  %d\n", m->epoch);
  printf("training loss: %.5f, acc: %.6f\n", m->train_loss, m->train_acc);
  printf("validation loss: %.5f, acc: %.6f\n", m->val_loss, m->val_acc);
  fflush(stdout);
}

static void on_message(void *user, const char *line) {
  clear_bar(user);
  fprintf(stderr, "%s: %s\n", app_name(), line);
}

static int init_config(int argc, char **argv, int first, const char *path) {
  graft_config c;
  graft_config_defaults(&c);
  snprintf(c.path, sizeof c.path, "%s", path);
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
      app_error(NULL, "--init: expected --SETTING VALUE pairs, got \"%s\" (see --help)", a);
      return APP_USAGE;
    }
    if (graft_config_set(&c, a + 2, argv[++i]) != GRAFT_OK) {
      app_error(NULL, "--init: %s", graft_detail());
      return APP_USAGE;
    }
  }
  const char *missing = graft_config_missing(&c);
  if (graft_config_validate(&c) != GRAFT_OK) {
    if (missing)
      app_error(path, "%s (give --%s)", graft_detail(), missing);
    else
      app_error(path, "%s", graft_detail());
    return APP_USAGE;
  }
  graft_status s = graft_config_save(path, &c);
  if (s != GRAFT_OK) {
    app_status_error(path, s);
    return APP_FAILED;
  }
  fprintf(stderr, "%s: wrote %s\n", app_name(), path);
  return APP_OK;
}

/* The config: rank 0 reads it, every rank gets it (only rank 0 needs the
 * file). false after printing what is wrong. */
static bool load_config(graft_comm *comm, const char *path, graft_config *c) {
  graft_status s = GRAFT_OK;
  if (graft_comm_rank(comm) == 0 && (s = graft_config_load(path, c)) != GRAFT_OK)
    app_status_error(path, s);
  int ok = s == GRAFT_OK;
  if (graft_comm_bcast(comm, &ok, sizeof ok) != GRAFT_OK ||
      (ok && graft_comm_bcast(comm, c, sizeof *c) != GRAFT_OK)) {
    app_status_error("MPI", GRAFT_EIO);
    return false;
  }
  return ok;
}

/* The command line: --init and --show done here; -1 to go on with *config
 * (and *restart, *quiet), else the exit status. */
static int parse_args(bool speaker, int argc, char **argv, const char **config, bool *restart,
                      bool *quiet) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      if (speaker) fputs(usage, stdout);
      return APP_OK;
    } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
      if (speaker) printf("finetune (graft) %s\n", GRAFT_VERSION);
      return APP_OK;
    } else if (strcmp(a, "--init") == 0) {
      if (i + 1 >= argc) {
        app_error(NULL, "--init needs a CONFIG.h5 path (see --help)");
        return APP_USAGE;
      }
      /* One file, written once: rank 0's exit status is every rank's. */
      return speaker ? init_config(argc, argv, i + 2, argv[i + 1]) : APP_OK;
    } else if (strcmp(a, "--show") == 0) {
      if (i + 1 >= argc) {
        app_error(NULL, "--show needs a CONFIG.h5 path (see --help)");
        return APP_USAGE;
      }
      graft_config c;
      if (!speaker) return APP_OK;
      graft_status s = graft_config_load(argv[i + 1], &c);
      if (s != GRAFT_OK) {
        app_status_error(argv[i + 1], s);
        return APP_USAGE;
      }
      graft_config_print(&c, stdout);
      return APP_OK;
    } else if (strcmp(a, "--restart") == 0) {
      *restart = true;
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      *quiet = true;
    } else if (a[0] == '-' && a[1] != '\0') {
      app_error(NULL, "unknown option %s (see --help)", a);
      return APP_USAGE;
    } else if (*config) {
      app_error(NULL, "one config at a time (got %s and %s)", *config, a);
      return APP_USAGE;
    } else {
      *config = a;
    }
  }
  if (!*config) {
    app_error(NULL, "no config given (see --help)");
    return APP_USAGE;
  }
  return -1;
}

/* SIGINT and SIGTERM stop after the current batch; a second one at once. */
static void catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND; /* a second signal stops at once */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* GRAFT_STOP_AT and GRAFT_CRASH_AT (for tests) into u; false after saying
 * what is wrong. */
static bool test_points(ui *u) {
  const char *stop_at = getenv("GRAFT_STOP_AT"), *crash_at = getenv("GRAFT_CRASH_AT");
  if (stop_at && sscanf(stop_at, "%d:%d", &u->stop_epoch, &u->stop_batch) != 2) {
    app_error(NULL, "GRAFT_STOP_AT: expected EPOCH:BATCH, got \"%s\"", stop_at);
    return false;
  }
  if (crash_at && sscanf(crash_at, "%d:%d", &u->crash_epoch, &u->crash_batch) != 2) {
    app_error(NULL, "GRAFT_CRASH_AT: expected EPOCH:BATCH, got \"%s\"", crash_at);
    return false;
  }
  return true;
}

static int finetune(graft_comm *comm, int argc, char **argv) {
  const bool speaker = graft_comm_rank(comm) == 0;
  bool restart = false, quiet = false;
  const char *config = NULL;
  int rc = parse_args(speaker, argc, argv, &config, &restart, &quiet);
  if (rc >= 0) return rc;
  graft_config c;
  if (!load_config(comm, config, &c)) return APP_USAGE;
  catch_signals();
  ui u = {speaker && !quiet && isatty(STDERR_FILENO), false, false, 0, 0, 0, 0, (int)c.batch_size};
  if (!test_points(&u)) return APP_USAGE;
  graft_finetune_options fo = {.restart = restart, .comm = comm};
  if (!app_backend_options(c.device, app_threads(c.threads), NULL, &fo.backend) ||
      !app_cache_memory_mb(&fo.cache_memory_mb))
    return APP_USAGE;
  fo.backend.precision = c.precision;
  graft_finetune_hooks hooks = {on_started, on_progress, speaker ? on_epoch : NULL,
                                speaker ? on_message : NULL,
                                &stop_flag, 0, &u};
  graft_status s = graft_finetune_run(&c, &fo, &hooks);
  clear_bar(&u);
  if (s == GRAFT_EINTR) return APP_INTERRUPTED;
  if (s != GRAFT_OK) {
    app_status_error(config, s);
    return u.started ? APP_FAILED : APP_USAGE;
  }
  return APP_OK;
}

int main(int argc, char **argv) {
  app_init("finetune");
  graft_comm *comm;
  if (!app_comm_open(&comm)) return APP_USAGE;
  return app_comm_close(comm, finetune(comm, argc, argv));
}
