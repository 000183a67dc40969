/**
 * The kernel data planes: the DSR director and backends (docs/dsr.md) and full NAT (docs/kernel.md),
 * rendered from `mode: dsr` / `mode: nat` services, and the writer `l4lb run` drives them with.
 */
export { DSR_METHODS, isDsrMethod, planDirector, selectDsrServices, MAX_DSR_TABLE_SIZE, DIRECTOR_TABLE, BACKEND_TABLE } from './director-plan.js';
export type { DirectorService, DsrBackend, DsrMethod } from './director-plan.js';
export { directorShape, renderDirector, renderDirectorRoutes, FLOW_PIN_TIMEOUT } from './director.js';
export { directorSlotValues, readDirector, type DirectorReading } from './adopt.js';
export { renderBackend } from './backend.js';
export { renderDiff, type DirectorDiff, type ServiceDelta } from './diff.js';
export { kernelSlots, gatedDirector, gatedSlotNames, tableSlotNames, type KernelBackend, type KernelSlots } from './slots.js';
export {
  NAT_FAMILY,
  NAT_TABLE,
  OWNER_SET,
  backendsMap,
  counterName,
  deadFromVerdicts,
  movedSlots,
  natDelta,
  natKeyExpression,
  natShape,
  natVerdicts,
  natValue,
  nftId,
  planNat,
  renderNatTable,
  renderSlotDelta,
  type AddressFamily,
  type NatAssignment,
  type NatService,
  type SlotDelta,
} from './nat.js';
export { systemNft, mapElements, mapEntries, objectsOf, setElements, type NftObject, type NftRunner } from './nft.js';
export { deadPinKeys, pinsPerBackend, renderUnpin, unpinDead } from './pins.js';
export { DirectorWriter, type DirectorContext } from './director-writer.js';
export { KernelWriter, conntrackCounter, natServices, removeTables, type DsrBackendStats, type DsrKernelStats, type KernelBackendStats, type KernelCounters, type KernelServiceStats, type NatKernelStats, type KernelWriterOptions } from './writer.js';
