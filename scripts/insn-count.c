/*
 * A qemu TCG plugin that counts guest instructions executed: the cost
 * figure of scripts/bench-arm (issue 16). TCG time is not a cost figure:
 * some NEON instructions are emulated by slow helpers, which would make a
 * NEON-heavy program look slower than it is on a Pi.
 *
 * Debian ships qemu-user with plugin support but not its header, so the
 * few calls used are declared here from the documented v1 plugin API
 * (qemu 7.2, include/qemu/qemu-plugin.h in the qemu docs).
 *
 * Usage: qemu-arm -plugin ./insn-count.so[,sym=on] PROGRAM ARGS
 * Prints "insn-count: N" on stderr at exit; with sym=on also the 25
 * symbols (by the first instruction of each translated block) that ran
 * the most instructions. A block counts all its instructions when it
 * runs, so a block left early by an exception is over-counted: rare in
 * the programs measured. With tb=on it prints the 40 costliest translated
 * blocks instead (guest address, symbol, instructions): with the
 * binary's line tables (addr2line, after subtracting the load bias that
 * the symbol's address in `nm` gives) that finds the hot loop inside a
 * function that inlines many. The counting is an inline add, which is
 * exact for one guest thread; for a multi-threaded program (`run`) pass
 * mt=on, which counts with an atomic add in a callback: slower, but no
 * increment of one thread is lost to another's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
                                                     void *, uint64_t);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
typedef void (*vcpu_udata_cb)(unsigned int, void *);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, vcpu_udata_cb, int,
                                                 void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t total;
static int by_symbol;
static int by_block;
static int threaded;

static void on_exec_atomic(unsigned int vcpu, void *n)
{
    (void)vcpu;
    __atomic_fetch_add(&total, (uint64_t)(uintptr_t)n, __ATOMIC_RELAXED);
}

/* Per-symbol counters: a small open-addressing table keyed by the
 * symbol's name pointer (qemu returns one string per symbol). */
#define SLOTS 65536
#define SLOTS_TB (1 << 18)
struct slot {
    const char *name;
    uint64_t insns;
};
static struct slot table[SLOTS];

/* Per-block counters (tb=on), keyed by guest address. */
struct block {
    uint64_t vaddr;
    const char *name;
    uint64_t insns;
};
static struct block blocks[SLOTS_TB];

static uint64_t *block_counter(uint64_t vaddr, const char *name)
{
    size_t h = (size_t)(vaddr >> 2) % SLOTS_TB;
    for (size_t i = 0; i < SLOTS_TB; i++) {
        struct block *b = &blocks[(h + i) % SLOTS_TB];
        if (b->vaddr == vaddr || !b->vaddr) {
            b->vaddr = vaddr;
            b->name = name ? name : "?";
            return &b->insns;
        }
    }
    return &total;
}

static uint64_t *counter_for(const char *name)
{
    if (!name)
        name = "?";
    size_t h = ((uintptr_t)name >> 4) % SLOTS;
    for (size_t i = 0; i < SLOTS; i++) {
        struct slot *s = &table[(h + i) % SLOTS];
        if (s->name == name || !s->name) {
            s->name = name;
            return &s->insns;
        }
    }
    return &total; /* table full: counted in the total only */
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (threaded)
        /* 0: QEMU_PLUGIN_CB_NO_REGS. */
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec_atomic, 0, (void *)(uintptr_t)n);
    else
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    if (by_symbol && n > 0) {
        const char *name = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 counter_for(name), n);
    }
    if (by_block && n > 0) {
        const char *name = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 block_counter(qemu_plugin_tb_vaddr(tb), name), n);
    }
}

static int by_block_insns(const void *a, const void *b)
{
    uint64_t x = ((const struct block *)a)->insns, y = ((const struct block *)b)->insns;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int by_insns(const void *a, const void *b)
{
    uint64_t x = ((const struct slot *)a)->insns, y = ((const struct slot *)b)->insns;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void on_exit_cb(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    fprintf(stderr, "insn-count: %llu\n", (unsigned long long)total);
    if (by_block) {
        qsort(blocks, SLOTS_TB, sizeof blocks[0], by_block_insns);
        for (size_t i = 0; i < 40 && blocks[i].insns; i++)
            fprintf(stderr, "insn-count: tb %5.1f%% %12llu 0x%llx %s\n",
                    100.0 * blocks[i].insns / total, (unsigned long long)blocks[i].insns,
                    (unsigned long long)blocks[i].vaddr, blocks[i].name);
    }
    if (!by_symbol)
        return;
    /* Names of one symbol may come as different pointers: merge them. */
    for (size_t i = 0; i < SLOTS; i++)
        for (size_t j = i + 1; table[i].name && j < SLOTS; j++)
            if (table[j].name && table[j].insns && strcmp(table[i].name, table[j].name) == 0) {
                table[i].insns += table[j].insns;
                table[j].insns = 0;
            }
    qsort(table, SLOTS, sizeof table[0], by_insns);
    for (size_t i = 0; i < 25 && table[i].insns; i++)
        fprintf(stderr, "insn-count: %5.1f%% %12llu %s\n", 100.0 * table[i].insns / total,
                (unsigned long long)table[i].insns, table[i].name);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info, int argc,
                                                               char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "sym=on") == 0 || strcmp(argv[i], "arg=sym") == 0)
            by_symbol = 1;
        else if (strcmp(argv[i], "tb=on") == 0)
            by_block = 1;
        else if (strcmp(argv[i], "mt=on") == 0)
            threaded = 1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
