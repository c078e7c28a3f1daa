/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "tierctl restore" and "tierctl record": run QEMU with its guest RAM
 * served by tier through the LD_PRELOAD adapter (vmm/qemu-adapter.c),
 * load the snapshot's device state over QMP and let the guest continue.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "util/err.h"
#include "vmm/qmp.h"

#ifndef TIER_QEMU_ADAPTER
#define TIER_QEMU_ADAPTER "libtier-qemu.so"
#endif

static const char restore_usage[] =
	"usage: tierctl restore SNAP [--policy P] [--cxl URI] [--pool URI]\n"
	"                       [--workload LINE]... [--stats FILE] [--timeout S]\n"
	"                       [--store DIR] -- QEMU-ARGS...\n"
	"       tierctl record SNAP [--trace NAME] [--workload LINE]...\n"
	"                       [--stats FILE] [--timeout S] [--store DIR] -- QEMU-ARGS...\n"
	"\n"
	"Runs QEMU with the snapshot's guest RAM served by tier (an LD_PRELOAD\n"
	"adapter takes over the memory-backend-file mapping), loads the saved\n"
	"device state over QMP and continues the guest. QEMU-ARGS must be the\n"
	"command line of the snapshot, with a -qmp unix socket; tierctl adds\n"
	"-incoming defer. The mem-path file may be an all-zero placeholder.\n"
	"\n"
	"  -p, --policy P      restore with the plan of policy P (default tiered)\n"
	"      --cxl URI       override the plan's CXL tier\n"
	"      --pool URI      override the plan's pool\n"
	"  -t, --trace NAME    record: trace name (default qemu)\n"
	"  -w, --workload LINE send LINE on the serial socket after the guest\n"
	"                      continues and print its answer (repeatable, in\n"
	"                      order); after the last answer take the statistics\n"
	"                      (record: save the trace) and quit QEMU\n"
	"      --stats FILE    write restore statistics as JSON (at the last\n"
	"                      answer, else at exit): faults by class, pages,\n"
	"                      anon_rss_bytes of guest RAM, cxl_mapped_bytes\n"
	"      --timeout S     seconds to wait for each answer (default 120)\n"
	"      --store DIR     the store (default $TIER_STORE or /var/lib/tier)\n";

/* Finds "key=VALUE" inside the comma-separated option string @opts. */
static int opt_value(const char *opts, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	const char *p = opts;

	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			const char *v = p + kl + 1;
			size_t vl = strcspn(v, ",");

			snprintf(buf, len, "%.*s", (int)vl, v);
			return 1;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return 0;
}

struct qemu_args {
	char ramfile[PATH_MAX];
	char qmp[108];
	char serial[108];
};

static int scan_qemu_args(int argc, char **argv, struct qemu_args *qa)
{
	char ids[8][64], paths[8][108], id[80];
	int i, k, nchr = 0;

	memset(qa, 0, sizeof(*qa));
	for (i = 0; i + 1 < argc; i++) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "-object") && !strncmp(v, "memory-backend-file,", 20))
			opt_value(v, "mem-path", qa->ramfile, sizeof(qa->ramfile));
		else if (!strcmp(o, "-qmp") && !strncmp(v, "unix:", 5))
			snprintf(qa->qmp, sizeof(qa->qmp), "%.*s",
				 (int)strcspn(v + 5, ","), v + 5);
		else if (!strcmp(o, "-chardev") && !strncmp(v, "socket,", 7) &&
			 nchr < 8 && opt_value(v, "id", ids[nchr], sizeof(ids[0])) &&
			 opt_value(v, "path", paths[nchr], sizeof(paths[0])))
			nchr++;
		else if (!strcmp(o, "-serial") && !qa->serial[0]) {
			/* the first serial port carries the workload requests */
			if (!strncmp(v, "unix:", 5))
				snprintf(qa->serial, sizeof(qa->serial), "%.*s",
					 (int)strcspn(v + 5, ","), v + 5);
			else if (!strncmp(v, "chardev:", 8))
				snprintf(qa->serial, sizeof(qa->serial), "@%s", v + 8);
		}
	}
	if (qa->serial[0] == '@') {	/* resolve "chardev:ID" */
		snprintf(id, sizeof(id), "%s", qa->serial + 1);
		qa->serial[0] = '\0';
		for (k = 0; k < nchr; k++)
			if (!strcmp(ids[k], id))
				memcpy(qa->serial, paths[k], sizeof(qa->serial));
	}
	if (!qa->ramfile[0])
		return tier_err(-EINVAL, "QEMU arguments have no -object memory-backend-file,...,mem-path=FILE");
	if (!qa->qmp[0])
		return tier_err(-EINVAL, "QEMU arguments have no -qmp unix:PATH,server=on,wait=off");
	if (access(qa->ramfile, R_OK))
		return tier_err(-errno, "%s: %m", qa->ramfile);
	return 0;
}

static const char *adapter_path(void)
{
	static char path[PATH_MAX + 64];
	const char *env = getenv("TIER_QEMU_ADAPTER");
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (env && *env)
		return env;
	/* Next to the tierctl binary (build tree: ../vmm/), else installed. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/../vmm/libtier-qemu.so", self);
			if (!access(path, R_OK))
				return path;
			snprintf(path, sizeof(path), "%s/../lib/tier/libtier-qemu.so", self);
			if (!access(path, R_OK))
				return path;
		}
	}
	return TIER_QEMU_ADAPTER;
}

/*
 * Sends request @line on the serial socket in the workload VM's protocol
 * (emu/guest/workload-init: "ID CMD ARGS" in, "@ID ANSWER" out) and waits
 * for its answer.
 */
static int serial_request(const char *path, const char *line, char *answer,
			  size_t len, int timeout_ms)
{
	static const char id[] = "tier1";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double deadline = now_ms() + timeout_ms;
	char buf[65536], req[4096];
	size_t have = 0;
	int fd, rc = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(req, sizeof(req), "%s %s\n", id, line);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = tier_err(-errno, "serial %s: %m", path);
		goto out;
	}
	if (write(fd, req, strlen(req)) < 0) {
		rc = tier_err(-errno, "serial %s: %m", path);
		goto out;
	}
	for (;;) {
		struct timeval tv = { .tv_sec = 1 };
		char *p, *nl;
		ssize_t n;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (now_ms() > deadline) {
			rc = tier_err(-ETIMEDOUT, "serial %s: no answer to '%s'",
				      path, line);
			goto out;
		}
		if (have == sizeof(buf) - 1)
			have = 0;	/* a line longer than the buffer: drop it */
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n == 0) {
			rc = tier_err(-ECONNRESET, "serial %s: closed", path);
			goto out;
		}
		if (n < 0)
			continue;
		have += n;
		buf[have] = '\0';
		for (p = buf; (nl = strchr(p, '\n')); p = nl + 1) {
			if (*p == '@' && !strncmp(p + 1, id, sizeof(id) - 1) &&
			    p[sizeof(id)] == ' ') {
				*nl = '\0';
				snprintf(answer, len, "%s", p + sizeof(id) + 1);
				answer[strcspn(answer, "\r")] = '\0';
				goto out;
			}
		}
		memmove(buf, p, have - (p - buf));
		have -= p - buf;
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

#define MAX_WORKLOADS 32

struct vm_opts {
	const char *cmd;
	int record;
	const char *policy, *cxl, *pool, *trace, *stats;
	const char *workloads[MAX_WORKLOADS];
	int nworkloads;
	int answer_timeout_ms;
};

/* Our scratch directory: the adapter's control FIFO, error and stats files. */
struct vm_tmp {
	char dir[64];
	char ctl[96], err[96], stats[PATH_MAX];
};

static void tmp_cleanup(struct vm_tmp *t, int own_stats)
{
	unlink(t->ctl);
	unlink(t->err);
	if (own_stats)
		unlink(t->stats);
	rmdir(t->dir);
}

/*
 * QEMU is gone or going: reap it (killing it if it lingers) and make the
 * reason the adapter gave, if any, our error. Returns the -errno.
 */
static int qemu_failed(pid_t pid, const struct vm_tmp *t, const char *snapname,
		       int rc)
{
	char msg[1100];
	int status = 0, i, fd;
	ssize_t n;
	pid_t w = 0;

	for (i = 0; i < 100 && (w = waitpid(pid, &status, WNOHANG)) == 0; i++)
		usleep(20000);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	fd = open(t->err, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, msg, sizeof(msg) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		msg[n] = '\0';
		msg[strcspn(msg, "\n")] = '\0';
		return tier_err(rc ? rc : -EIO, "QEMU stopped by tier: %s", msg);
	}
	/* the reason so far, copied: it is the buffer tier_err writes */
	snprintf(msg, sizeof(msg), "%s", tier_errmsg());
	if (w > 0 && WIFEXITED(status))
		return tier_err(rc ? rc : -EIO, "%s: QEMU exited with status %d (%s)",
				snapname, WEXITSTATUS(status), msg);
	if (w > 0 && WIFSIGNALED(status))
		return tier_err(rc ? rc : -EIO, "%s: QEMU was killed by signal %d (%s)",
				snapname, WTERMSIG(status), msg);
	return tier_err(rc ? rc : -EIO, "%s: %s; QEMU killed", snapname, msg);
}

/* Connects to QMP while watching that QEMU is still alive. */
static int qmp_attach(const char *path, pid_t pid, int timeout_ms,
		      struct qmp **q)
{
	double deadline = now_ms() + timeout_ms;
	siginfo_t si;
	int rc;

	for (;;) {
		rc = qmp_connect(path, 100, q);
		if (!rc)
			return 0;
		/* WNOWAIT: qemu_failed() reaps it and reads the status */
		memset(&si, 0, sizeof(si));
		if (!waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) &&
		    si.si_pid == pid)
			return tier_err(-ECHILD, "QEMU exited before its QMP socket answered");
		if (now_ms() > deadline)
			return rc;
	}
}

/* Sends control lines to the adapter and waits until it wrote @stats. */
static int adapter_ctl(const struct vm_tmp *t, const char *lines, pid_t pid)
{
	double deadline = now_ms() + 10000;
	struct stat st;
	int fd = -1;

	unlink(t->stats);
	for (;;) {
		/* O_NONBLOCK: ENXIO until the adapter's thread has it open */
		fd = open(t->ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0 && write(fd, lines, strlen(lines)) >= 0)
			break;
		/* EPIPE: the thread saw the end of a previous writer and
		 * is reopening; ENXIO: not open yet */
		if ((errno != ENXIO && errno != EPIPE) || now_ms() > deadline) {
			int err = errno;

			if (fd >= 0)
				close(fd);
			return tier_err(-err, "adapter control %s: %m", t->ctl);
		}
		if (fd >= 0)
			close(fd);
		fd = -1;
		usleep(5000);
	}
	close(fd);
	while (stat(t->stats, &st)) {
		siginfo_t si = { 0 };

		if (now_ms() > deadline ||
		    (!waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) &&
		     si.si_pid == pid))
			return tier_err(-ETIMEDOUT, "the adapter did not write its statistics");
		usleep(2000);
	}
	return 0;
}

/* The child: QEMU with the adapter preloaded, told through its
 * environment what to serve and where to report. */
static void __attribute__((noreturn))
exec_qemu(char **argv, struct tier_store *store, const char *snapname,
	  const struct vm_opts *o, const struct qemu_args *qa,
	  const struct vm_tmp *t)
{
	setenv("LD_PRELOAD", adapter_path(), 1);
	setenv("TIER_QEMU_RAMFILE", qa->ramfile, 1);
	setenv("TIER_QEMU_SNAP", snapname, 1);
	setenv("TIER_STORE", tier_store_path(store), 1);
	setenv("TIER_QEMU_MODE", o->record ? "record" : "restore", 1);
	setenv("TIER_QEMU_CTL", t->ctl, 1);
	setenv("TIER_QEMU_ERRFILE", t->err, 1);
	setenv("TIER_QEMU_STATS", t->stats, 1);
	if (o->policy)
		setenv("TIER_QEMU_POLICY", o->policy, 1);
	if (o->cxl)
		setenv("TIER_QEMU_CXL", o->cxl, 1);
	if (o->pool)
		setenv("TIER_QEMU_POOL", o->pool, 1);
	if (o->trace)
		setenv("TIER_QEMU_TRACE", o->trace, 1);
	execvp(argv[0], argv);
	fprintf(stderr, "tierctl %s: %s: %s\n", o->cmd, argv[0], strerror(errno));
	_exit(127);
}

/* Over QMP: load the device state from @state and continue the guest. */
static int qmp_resume(struct qmp *q, const char *state)
{
	char incoming[PATH_MAX + 128];
	int rc;

	rc = qmp_exec(q, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
		      "{\"capabilities\": [{\"capability\": \"x-ignore-shared\", \"state\": true}]}}",
		      NULL, 0, 5000);
	if (!rc) {
		snprintf(incoming, sizeof(incoming),
			 "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"exec:cat %s\"}}",
			 state);
		rc = qmp_exec(q, incoming, NULL, 0, 5000);
	}
	if (!rc)
		rc = qmp_wait_migration(q, 60000);
	if (!rc)
		rc = qmp_exec(q, "{\"execute\": \"cont\"}", NULL, 0, 5000);
	return rc;
}

/*
 * Sends each --workload line on the serial socket and prints its answer;
 * after the last, has the adapter save the trace (record) and write its
 * statistics, then quits QEMU. A failure is the caller's to hand to
 * qemu_failed().
 */
static int run_workloads(const struct vm_opts *o, const struct qemu_args *qa,
			 const struct vm_tmp *t, struct qmp *q, pid_t pid,
			 const char *snapname, double t0)
{
	char reply[4096], ctl[300];
	int rc, i;

	for (i = 0; i < o->nworkloads; i++) {
		char answer[4096];

		rc = serial_request(qa->serial, o->workloads[i], answer,
				    sizeof(answer), o->answer_timeout_ms);
		if (rc)
			return rc;
		printf("%s\n", answer);
		fflush(stdout);
		fprintf(stderr, "tierctl %s: %s: answer %d after %.1f ms (QEMU start)\n",
			o->cmd, snapname, i + 1, now_ms() - t0);
	}
	if (!o->nworkloads)
		return 0;
	/* Cut the trace and measure at the answer, not at QEMU's exit. */
	if (o->record)
		snprintf(ctl, sizeof(ctl), "save %s\nstats\n",
			 o->trace ? o->trace : "qemu");
	else
		snprintf(ctl, sizeof(ctl), "stats\n");
	rc = adapter_ctl(t, ctl, pid);
	if (!rc && !access(t->err, F_OK)) {
		qmp_exec(q, "{\"execute\": \"quit\"}", reply,
			 sizeof(reply), 5000);
		rc = tier_err(-EIO, "the adapter reported an error");
	}
	if (rc)
		return rc;
	qmp_exec(q, "{\"execute\": \"quit\"}", reply, sizeof(reply), 5000);
	return 0;
}

static int run(struct tier_store *store, const char *snapname,
	       const struct vm_opts *o, int qargc, char **qargv)
{
	char state[PATH_MAX];
	const char *cmd = o->cmd;
	struct vm_tmp t = { .dir = "/tmp/tierctl-vm-XXXXXX" };
	struct tier_snap *snap;
	struct qemu_args qa;
	struct qmp *q = NULL;
	double t0, t_cont;
	char **argv;
	int rc, status, i;
	pid_t pid;

	rc = tier_snap_open(store, snapname, &snap);
	if (rc)
		goto fail;
	rc = tier_snap_state_path(snap, state, sizeof(state));
	if (rc)
		goto fail_snap;
	rc = scan_qemu_args(qargc, qargv, &qa);
	if (rc)
		goto fail_snap;
	if (o->nworkloads && !qa.serial[0]) {
		rc = tier_err(-EINVAL, "--workload needs a -serial unix:PATH socket in the QEMU arguments");
		goto fail_snap;
	}
	if (!mkdtemp(t.dir)) {
		rc = tier_err(-errno, "mkdtemp: %m");
		goto fail_snap;
	}
	snprintf(t.ctl, sizeof(t.ctl), "%s/ctl", t.dir);
	snprintf(t.err, sizeof(t.err), "%s/error", t.dir);
	snprintf(t.stats, sizeof(t.stats), "%s", o->stats ? o->stats : "");
	if (!o->stats)
		snprintf(t.stats, sizeof(t.stats), "%s/stats.json", t.dir);
	if (mkfifo(t.ctl, 0600)) {
		rc = tier_err(-errno, "mkfifo %s: %m", t.ctl);
		goto fail_tmp;
	}

	argv = calloc(qargc + 3, sizeof(*argv));
	if (!argv) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto fail_tmp;
	}
	for (i = 0; i < qargc; i++)
		argv[i] = qargv[i];
	argv[qargc] = "-incoming";
	argv[qargc + 1] = "defer";

	unlink(qa.qmp);
	unlink(t.stats);
	t0 = now_ms();
	pid = fork();
	if (pid < 0) {
		rc = tier_err(-errno, "fork: %m");
		free(argv);
		goto fail_tmp;
	}
	if (pid == 0)
		exec_qemu(argv, store, snapname, o, &qa, &t);
	free(argv);

	rc = qmp_attach(qa.qmp, pid, 20000, &q);
	if (!rc)
		rc = qmp_resume(q, state);
	t_cont = now_ms();
	if (rc) {
		rc = qemu_failed(pid, &t, snapname, rc);
		goto fail_q;
	}
	fprintf(stderr, "tierctl %s: %s: guest running %.0f ms after QEMU start\n",
		cmd, snapname, t_cont - t0);

	rc = run_workloads(o, &qa, &t, q, pid, snapname, t0);
	if (rc) {
		rc = qemu_failed(pid, &t, snapname, rc);
		goto fail_q;
	}
	qmp_close(q);
	q = NULL;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		goto out;
	rc = qemu_failed(pid, &t, snapname, -EIO);
	goto fail_tmp;
out:
	tmp_cleanup(&t, !o->stats);
	tier_snap_close(snap);
	return 0;
fail_q:
	qmp_close(q);
fail_tmp:
	tmp_cleanup(&t, !o->stats);
fail_snap:
	tier_snap_close(snap);
fail:
	fprintf(stderr, "tierctl %s: %s\n", cmd, tier_errmsg());
	return 1;
}

static int cmd_vm(int argc, char **argv, int record)
{
	static const struct option opts[] = {
		{ "policy",   required_argument, NULL, 'p' },
		{ "cxl",      required_argument, NULL, 'c' },
		{ "pool",     required_argument, NULL, 'P' },
		{ "trace",    required_argument, NULL, 't' },
		{ "workload", required_argument, NULL, 'w' },
		{ "stats",    required_argument, NULL, 's' },
		{ "store",    required_argument, NULL, 'S' },
		{ "timeout",  required_argument, NULL, 'T' },
		{ "help",     no_argument,       NULL, 'h' },
		{ 0 }
	};
	struct vm_opts o = { .record = record, .answer_timeout_ms = 120000 };
	const char *storedir = NULL;
	struct tier_store *store;
	int c, rc, dd;

	o.cmd = record ? "record" : "restore";
	/* A QEMU that dies must show as an error return, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	/* Everything after "--" belongs to QEMU: stop getopt there. */
	for (dd = 1; dd < argc && strcmp(argv[dd], "--"); dd++)
		;
	while ((c = getopt_long(dd, argv, "p:t:w:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o.policy = optarg; break;
		case 'c': o.cxl = optarg; break;
		case 'P': o.pool = optarg; break;
		case 't': o.trace = optarg; break;
		case 'w':
			if (o.nworkloads == MAX_WORKLOADS) {
				fprintf(stderr, "tierctl %s: at most %d --workload\n",
					o.cmd, MAX_WORKLOADS);
				return 2;
			}
			o.workloads[o.nworkloads++] = optarg;
			break;
		case 's': o.stats = optarg; break;
		case 'S': storedir = optarg; break;
		case 'T': o.answer_timeout_ms = atoi(optarg) * 1000; break;
		case 'h':
			fputs(restore_usage, stdout);
			return 0;
		default:
			fputs(restore_usage, stderr);
			return 2;
		}
	}
	if (optind != dd - 1 || dd >= argc - 1) {
		fputs(restore_usage, stderr);
		return 2;
	}
	if ((record && (o.policy || o.cxl || o.pool)) || (!record && o.trace)) {
		fprintf(stderr, "tierctl %s: %s\n", o.cmd, record ?
			"--policy, --cxl and --pool are for restore" :
			"--trace is for record");
		return 2;
	}
	if (o.answer_timeout_ms <= 0) {
		fprintf(stderr, "tierctl %s: --timeout wants seconds > 0\n", o.cmd);
		return 2;
	}
	rc = tier_store_open(storedir, &store);
	if (rc) {
		fprintf(stderr, "tierctl %s: %s\n", o.cmd, tier_errmsg());
		return 1;
	}
	rc = run(store, argv[optind], &o, argc - dd - 1, argv + dd + 1);
	tier_store_close(store);
	return rc;
}

int cmd_restore(int argc, char **argv)
{
	return cmd_vm(argc, argv, 0);
}

int cmd_record(int argc, char **argv)
{
	return cmd_vm(argc, argv, 1);
}
