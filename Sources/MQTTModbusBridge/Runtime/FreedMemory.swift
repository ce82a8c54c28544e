#if canImport(Glibc)
import Glibc
#endif

/// Gives the pages the C allocator holds free back to the system.
///
/// Loading and expanding a configuration of 10,000 points allocates several times what the
/// bridge keeps (the YAML tree, the expanded templates, the checks), on the thread that loaded
/// it. glibc keeps what is freed in that thread's arena for later, where it counts as resident
/// memory for as long as the process runs; `malloc_trim` returns every free page of every
/// arena. Called once the configuration is in force, at start and after each reload.
///
/// Not in a process built with the address sanitizer: its allocator replaces glibc's, whose
/// arenas are then never set up, and `malloc_trim` walking them crashes (found by
/// `Tests/sanitizers/asan.sh`).
enum FreedMemory {
    static func returnToSystem() {
        #if os(Linux) && canImport(Glibc)
        guard !glibcAllocatorReplaced else { return }
        _ = glibcMallocTrim(0)
        #endif
    }

    #if os(Linux) && canImport(Glibc)
    /// Whether the address sanitizer's runtime, which brings its own allocator, is linked in.
    private static let glibcAllocatorReplaced = dlsym(nil, "__asan_init") != nil
    #endif
}

#if os(Linux) && canImport(Glibc)
/// glibc's `int malloc_trim(size_t pad)`, declared in `<malloc.h>`, which the Glibc module does
/// not import.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
