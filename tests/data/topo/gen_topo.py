# Generates the saved topologies of tests/unit/test_placement.c (run from this folder):
#   python3 gen_topo.py      > 2pack_4gpu.xml
#   python3 gen_topo.py cuda > 2pack_4cuda.xml
# Both: 2 packages x (1 NUMA node, 4 cores x 2 PUs), PU numbering interleaved like Intel (core k
# has PUs k and k+8), 2 NVIDIA H100 (10de:2330, class 0302) per package and an ASPEED VGA
# (1a03:2000) on package 0 that is not a GPU for imc. With 'cuda': CUDA OS devices as hwloc's
# CUDA plugin lists them, numbered cuda2, cuda3 on package 0 and cuda0, cuda1 on package 1.
import sys
CUDA = [2, 3, 0, 1] if len(sys.argv) > 1 and sys.argv[1] == 'cuda' else []
gp = [100]
def g():
    gp[0] += 1
    return gp[0]
def mask(bits):
    v = 0
    for b in bits: v |= 1 << b
    return "0x%08x" % v
def attrs(cpus, node):
    c = mask(cpus); n = mask([node])
    return f'cpuset="{c}" complete_cpuset="{c}" nodeset="{n}" complete_nodeset="{n}"'
out = ['<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE topology SYSTEM "hwloc2.dtd">', '<topology version="2.0">']
allc = list(range(16))
out.append(f'  <object type="Machine" os_index="0" cpuset="{mask(allc)}" complete_cpuset="{mask(allc)}" allowed_cpuset="{mask(allc)}" nodeset="0x00000003" complete_nodeset="0x00000003" allowed_nodeset="0x00000003" gp_index="1">')
out.append('    <info name="Backend" value="Linux"/>')
bus = 0x17
for p in range(2):
    cores = [p * 4 + k for k in range(4)]
    pus = [c for k in cores for c in (k, k + 8)]
    out.append(f'    <object type="Package" os_index="{p}" {attrs(pus, p)} gp_index="{g()}">')
    out.append(f'      <object type="NUMANode" os_index="{p}" {attrs(pus, p)} gp_index="{g()}" local_memory="{(p+1) * 64 << 30}"/>')
    for k in cores:
        out.append(f'      <object type="Core" os_index="{k}" {attrs([k, k + 8], p)} gp_index="{g()}">')
        for pu in (k, k + 8):
            out.append(f'        <object type="PU" os_index="{pu}" {attrs([pu], p)} gp_index="{g()}"/>')
        out.append('      </object>')
    devs = [("0302 [10de:2330] [10de:16c1] a1", bus), ("0302 [10de:2330] [10de:16c1] a1", bus + 1)]
    if p == 0:
        devs.insert(0, ("0300 [1a03:2000] [1a03:2000] 41", 0x03))
    for cls, b in devs:
        out.append(f'      <object type="Bridge" gp_index="{g()}" bridge_type="0-1" depth="0" bridge_pci="0000:[{b:02x}-{b:02x}]">')
        pci = f'        <object type="PCIDev" gp_index="{g()}" pci_busid="0000:{b:02x}:00.0" pci_type="{cls}" pci_link_speed="0.000000"'
        if CUDA and cls.startswith("0302"):
            out.append(pci + '>')
            out.append(f'          <object type="OSDev" gp_index="{g()}" name="cuda{CUDA.pop(0)}" subtype="CUDA" osdev_type="5"/>')
            out.append('        </object>')
        else:
            out.append(pci + '/>')
        out.append('      </object>')
    bus += 0x40
    out.append('    </object>')
out.append('  </object>')
out.append('</topology>')
print("\n".join(out))
