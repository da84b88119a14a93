// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {PoseidonT3} from "poseidon-solidity/PoseidonT3.sol";
import {PoseidonT5} from "poseidon-solidity/PoseidonT5.sol";
import {IERC20Minimal} from "./IERC20Minimal.sol";

/// @title zkcredits pool: anonymous prepaid API credits.
/// @notice Holds the deposits of notes, the Merkle tree of their leaves and the history of
/// its roots, the outstanding credit per expiry epoch, slashing of double-spent notes, the
/// provider's claim of expired epochs, and the on-chain log of policy violations.
/// See docs/PROTOCOL.md (sections 2, 3 and 6) and contracts/README.md.
///
/// Hashes are Poseidon over the BN254 scalar field with circomlib's parameters
/// (poseidon-solidity). The first input of every hash except a Merkle node is a domain tag.
///
/// The tree is a Lean Incremental Merkle Tree (the shape of the zk-kit lean-imt package): a node
/// with no right child takes the value of its left child, there are no zero leaves, the
/// root of a one-leaf tree is that leaf, and a parent is H(left, right) with no tag. It is
/// kept as a frontier (one node per level): a deposit hashes its leaf up through the complete
/// subtrees it closes (one hash per trailing 1 bit of its index, one on average) and writes
/// one frontier slot, and computes no root. `commitRoot()` (permissionless, and called at the
/// end of every `depositMany`) folds the frontier into the root and pushes it into a ring of
/// the last `rootHistorySize` committed roots. Roots are identical to the InternalLeanIMT of
/// zk-kit lean-imt.sol fed the same leaves (checked by contracts/test/pool.test.mjs).
///
/// Gateways accept the roots their own indexer computes from `Deposited` events; only what
/// must be checked on chain (the close) needs a committed root, and anyone can commit one.
///
/// The close (withdraw) / challenge / finalize flow is added later; storage is laid out for
/// it: `closedOrSlashed` is keyed by NC = H(CLOSE, k), and a `pendingCloses` mapping keyed by
/// NC will be appended after the existing state variables.
contract ZkCreditsPool {
    // ---------------------------------------------------------------- constants

    /// @notice The BN254 scalar field modulus: note ids and secrets must be below it.
    uint256 public constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice Where penalties are burned at close (used by the close flow).
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;

    /// @notice The largest tree depth the pool accepts (LeanIMT's own limit).
    uint8 public constant MAX_TREE_DEPTH = 32;

    // Domain tags, the first Poseidon input (docs/PROTOCOL.md section 2). STATE, RECEIPT,
    // SLOPE, NULLIFIER and NOTE are only hashed off chain or in circuits today.
    uint256 internal constant TAG_ID = 1;
    uint256 internal constant TAG_LEAF = 2;
    uint256 internal constant TAG_STATE = 3;
    uint256 internal constant TAG_RECEIPT = 4;
    uint256 internal constant TAG_SLOPE = 5;
    uint256 internal constant TAG_NULLIFIER = 6;
    uint256 internal constant TAG_CLOSE = 7;
    uint256 internal constant TAG_NOTE = 8;

    // ---------------------------------------------------------------- types

    /// @notice Deployment parameters (see contracts/README.md).
    /// @param token the ERC-20 that notes are paid in
    /// @param provider the first provider (receives revenue, slashes, expired epochs)
    /// @param unit token base units per credit unit (> 0, <= 2^128)
    /// @param cMax charge per request in credit units, taken up front (> 0)
    /// @param pMax largest policy penalty per request in credit units
    /// @param epochLen seconds per epoch (> 0)
    /// @param noteLifetime epochs from the deposit's epoch to its expiry epoch (> 0)
    /// @param grace seconds after the end of an epoch before the provider may claim it
    /// @param challengeWindow seconds a unilateral close waits for challenges (close flow)
    /// @param bountyBps share of a slashed note paid to the slasher, in basis points (<= 10000)
    /// @param treeDepth the tree holds at most 2^treeDepth leaves (1..32; default 20)
    /// @param rootHistorySize how many recent roots are known (1..65536; default 64)
    /// @param genesisTime start of epoch 0 (unix seconds, <= now); 0 means the deploy time
    /// @param denominations allowed note amounts in credit units, strictly increasing;
    ///        empty means any amount
    struct Config {
        address token;
        address provider;
        uint256 unit;
        uint64 cMax;
        uint64 pMax;
        uint64 epochLen;
        uint64 noteLifetime;
        uint64 grace;
        uint64 challengeWindow;
        uint16 bountyBps;
        uint8 treeDepth;
        uint32 rootHistorySize;
        uint64 genesisTime;
        uint64[] denominations;
    }

    /// @notice A deposited note, keyed by ID = H(ID, k). Packed in one storage slot.
    struct Note {
        uint64 amount; // D, credit units
        uint64 expiryEpoch; // E
        uint64 leafIndex; // position of its leaf in the tree
        bool exists;
    }

    /// @dev Per expiry epoch: credit units deposited minus slashed (minus closed, later).
    struct EpochInfo {
        uint192 outstanding;
        bool claimed;
    }

    // ---------------------------------------------------------------- events

    /// @notice One per note. With these alone an indexer rebuilds the tree: leaves in
    /// `leafIndex` order. No root: a deposit does not compute one (see `commitRoot`).
    event Deposited(uint256 indexed id, uint256 leafIndex, uint256 leaf, uint64 amount, uint64 expiryEpoch);
    /// @notice A root entered the ring of known roots: the root of the first `size` leaves.
    event RootCommitted(uint256 root, uint256 size);
    event Slashed(
        uint256 indexed id, uint256 indexed nc, uint256 k, address slasher, uint256 bounty, uint256 toProvider
    );
    event ViolationRecorded(uint256 indexed nullifier, bytes32 evidenceHash, uint64 penalty);
    event ExpiredClaimed(uint64 indexed epoch, uint256 amount);
    event ProviderTransferStarted(address indexed previousProvider, address indexed newProvider);
    event ProviderTransferred(address indexed previousProvider, address indexed newProvider);

    // ---------------------------------------------------------------- errors

    error InvalidConfig(string parameter);
    error Reentrancy();
    error NotProvider();
    error NotPendingProvider();
    error ZeroAmount();
    error AmountNotMultipleOfUnit(uint256 amount);
    error AmountTooLarge(uint256 credits);
    error DenominationNotAllowed(uint256 credits);
    error TransferAmountMismatch(uint256 expected, uint256 received);
    error TokenCallFailed();
    error NotAFieldElement(uint256 value);
    error NoteAlreadyDeposited(uint256 id);
    error TreeFull();
    error EmptyBatch();
    error LengthMismatch();
    error UnknownNote();
    error NoteAlreadySettled();
    error EpochClaimed();
    error EpochNotExpired();
    error PenaltyTooLarge(uint256 index, uint64 penalty);

    // ---------------------------------------------------------------- immutables

    IERC20Minimal public immutable token;
    uint256 public immutable unit;
    uint64 public immutable cMax;
    uint64 public immutable pMax;
    uint64 public immutable epochLen;
    uint64 public immutable noteLifetime;
    uint64 public immutable grace;
    uint64 public immutable challengeWindow;
    uint16 public immutable bountyBps;
    uint8 public immutable treeDepth;
    uint32 public immutable rootHistorySize;
    uint64 public immutable genesisTime;
    bool internal immutable _anyAmount;

    // ---------------------------------------------------------------- storage

    // Tree size (leaves), number of roots committed so far, and the tree size of the last
    // committed root, in one slot (slot 0).
    uint64 internal _treeSize;
    uint64 internal _rootCount;
    uint64 internal _committedSize;

    /// @notice Receives revenue (slashes, expired epochs) and records violations.
    address public provider;
    /// @notice Set by `transferProvider`, becomes `provider` on `acceptProvider`.
    address public pendingProvider;
    // _frontier[l] is the root of the most recently completed subtree of 2^l leaves, i.e.
    // of the leftmost such subtree not yet hashed into a bigger one when bit l of the
    // size is set (LeanIMT's `sideNodes`, written only when the subtree completes).
    uint256[33] internal _frontier;
    // Ring of recent roots: root number j (0-based, in push order) is at j % rootHistorySize.
    mapping(uint256 => uint256) internal _rootRing;

    /// @notice Deposited notes by ID = H(ID, k).
    mapping(uint256 id => Note) public deposits;
    mapping(uint64 epoch => EpochInfo) internal _epochs;
    /// @notice NC = H(CLOSE, k) of every note that was slashed (and, later, closed).
    mapping(uint256 nc => bool) public closedOrSlashed;

    uint64[] internal _denominations;
    mapping(uint64 credits => bool) internal _denominationAllowed;

    // Appended by the close flow (later): mapping(uint256 nc => PendingClose) pendingCloses;

    bool private transient _entered;

    // ---------------------------------------------------------------- modifiers

    /// @dev Every function that moves tokens carries it (transient storage, EIP-1153).
    modifier nonReentrant() {
        if (_entered) revert Reentrancy();
        _entered = true;
        _;
        _entered = false;
    }

    modifier onlyProvider() {
        if (msg.sender != provider) revert NotProvider();
        _;
    }

    // ---------------------------------------------------------------- constructor

    constructor(Config memory cfg) {
        if (cfg.token.code.length == 0) revert InvalidConfig("token");
        if (cfg.provider == address(0)) revert InvalidConfig("provider");
        if (cfg.unit == 0 || cfg.unit > type(uint128).max) revert InvalidConfig("unit");
        if (cfg.cMax == 0) revert InvalidConfig("cMax");
        if (cfg.epochLen == 0) revert InvalidConfig("epochLen");
        if (cfg.noteLifetime == 0) revert InvalidConfig("noteLifetime");
        if (cfg.bountyBps > 10_000) revert InvalidConfig("bountyBps");
        if (cfg.treeDepth == 0 || cfg.treeDepth > MAX_TREE_DEPTH) revert InvalidConfig("treeDepth");
        if (cfg.rootHistorySize == 0 || cfg.rootHistorySize > 65_536) revert InvalidConfig("rootHistorySize");
        if (cfg.genesisTime > block.timestamp) revert InvalidConfig("genesisTime");

        uint64 previous = 0;
        for (uint256 i = 0; i < cfg.denominations.length; ++i) {
            uint64 d = cfg.denominations[i];
            if (d <= previous) revert InvalidConfig("denominations");
            previous = d;
            _denominations.push(d);
            _denominationAllowed[d] = true;
        }

        token = IERC20Minimal(cfg.token);
        unit = cfg.unit;
        cMax = cfg.cMax;
        pMax = cfg.pMax;
        epochLen = cfg.epochLen;
        noteLifetime = cfg.noteLifetime;
        grace = cfg.grace;
        challengeWindow = cfg.challengeWindow;
        bountyBps = cfg.bountyBps;
        treeDepth = cfg.treeDepth;
        rootHistorySize = cfg.rootHistorySize;
        genesisTime = cfg.genesisTime == 0 ? uint64(block.timestamp) : cfg.genesisTime;
        _anyAmount = cfg.denominations.length == 0;

        provider = cfg.provider;
        emit ProviderTransferred(address(0), cfg.provider);
    }

    // ---------------------------------------------------------------- deposits

    /// @notice Deposit one note with ID `id` = H(ID, k), paying `amount` token base units
    /// (pulled with transferFrom; the caller approves first). The note's D is what the pool
    /// actually received divided by `unit`; its expiry epoch is currentEpoch() + noteLifetime.
    function deposit(uint256 id, uint256 amount) external nonReentrant {
        _checkAmount(amount);
        uint256 index = _treeSize;
        if (index >> treeDepth != 0) revert TreeFull();
        uint256 received = _pull(amount);
        if (received % unit != 0) revert AmountNotMultipleOfUnit(received);
        uint64 d = _credits(received);
        uint64 e = currentEpoch() + noteLifetime;

        uint256 leaf = _addNote(id, d, e, index);
        _epochs[e].outstanding += d;
        _insert(leaf, index);
        _treeSize = uint64(index + 1);
        emit Deposited(id, index, leaf, d, e);
    }

    /// @notice Deposit several notes with one transferFrom of the sum of `amounts`. The
    /// pool must receive exactly that sum (fee-on-transfer tokens are refused). Commits the
    /// root at the end, so the batch leaves a known root that includes its notes.
    function depositMany(uint256[] calldata ids, uint256[] calldata amounts) external nonReentrant {
        uint256 n = ids.length;
        if (n == 0) revert EmptyBatch();
        if (n != amounts.length) revert LengthMismatch();
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            _checkAmount(amounts[i]);
            total += amounts[i];
        }
        uint256 first = _treeSize;
        if ((first + n - 1) >> treeDepth != 0) revert TreeFull();
        uint256 received = _pull(total);
        if (received != total) revert TransferAmountMismatch(total, received);
        _addBatch(ids, amounts, first);
        _commitRoot();
    }

    // ---------------------------------------------------------------- roots

    /// @notice Fold the frontier into the root of the whole tree (popcount(treeSize) - 1
    /// hashes) and push it into the ring of known roots. Permissionless. Does nothing (and
    /// emits nothing) when no deposit came since the last commit. Returns the current root.
    function commitRoot() external returns (uint256) {
        return _commitRoot();
    }

    // ---------------------------------------------------------------- slashing

    /// @notice Slash a note whose secret `k` became public (a double spend reveals it).
    /// Permissionless. Pays bountyBps of the note to the caller and the rest to the provider.
    function slash(uint256 k) external nonReentrant {
        if (k >= SNARK_SCALAR_FIELD) revert NotAFieldElement(k);
        uint256 id = PoseidonT3.hash([TAG_ID, k]);
        Note memory note = deposits[id];
        if (!note.exists) revert UnknownNote();
        uint256 nc = PoseidonT3.hash([TAG_CLOSE, k]);
        if (closedOrSlashed[nc]) revert NoteAlreadySettled();
        EpochInfo storage ep = _epochs[note.expiryEpoch];
        if (ep.claimed) revert EpochClaimed();

        closedOrSlashed[nc] = true;
        _cancelPendingClose(nc);
        ep.outstanding -= note.amount;

        uint256 value = uint256(note.amount) * unit;
        uint256 bounty = value * bountyBps / 10_000;
        uint256 toProvider = value - bounty;
        address to = provider;
        emit Slashed(id, nc, k, msg.sender, bounty, toProvider);

        if (bounty != 0) _send(msg.sender, bounty);
        if (toProvider != 0) _send(to, toProvider);
    }

    /// @dev Hook for the close flow (added later): a slash of a note with a pending
    /// unilateral close on `nc` cancels that close. There are no pending closes yet.
    function _cancelPendingClose(uint256 nc) internal {}

    // ---------------------------------------------------------------- provider

    /// @notice Log policy violations (events only). Penalties are burned at close.
    function recordViolations(
        uint256[] calldata nullifiers,
        bytes32[] calldata evidenceHashes,
        uint64[] calldata penalties
    ) external onlyProvider {
        uint256 n = nullifiers.length;
        if (n != evidenceHashes.length || n != penalties.length) revert LengthMismatch();
        uint64 max = pMax;
        for (uint256 i = 0; i < n; ++i) {
            if (penalties[i] > max) revert PenaltyTooLarge(i, penalties[i]);
            emit ViolationRecorded(nullifiers[i], evidenceHashes[i], penalties[i]);
        }
    }

    /// @notice Claim what is still outstanding for expiry epoch `epoch`, once the epoch has
    /// ended plus `grace` seconds. After this, notes of that epoch can no longer be slashed
    /// (nor closed).
    function claimExpired(uint64 epoch) external nonReentrant onlyProvider {
        if (block.timestamp < uint256(genesisTime) + (uint256(epoch) + 1) * epochLen + grace) {
            revert EpochNotExpired();
        }
        EpochInfo storage ep = _epochs[epoch];
        if (ep.claimed) revert EpochClaimed();
        ep.claimed = true;
        uint256 amount = uint256(ep.outstanding) * unit;
        emit ExpiredClaimed(epoch, amount);
        if (amount != 0) _send(msg.sender, amount);
    }

    /// @notice Start handing the provider role to `newProvider` (address(0) cancels).
    function transferProvider(address newProvider) external onlyProvider {
        pendingProvider = newProvider;
        emit ProviderTransferStarted(msg.sender, newProvider);
    }

    /// @notice Called by the pending provider to take the role.
    function acceptProvider() external {
        if (msg.sender != pendingProvider || msg.sender == address(0)) revert NotPendingProvider();
        address previous = provider;
        provider = msg.sender;
        pendingProvider = address(0);
        emit ProviderTransferred(previous, msg.sender);
    }

    // ---------------------------------------------------------------- views

    /// @notice The last committed root, 0 before the first commit. It covers the first
    /// `committedSize()` leaves; deposits after it are in the tree but not yet in a root.
    function root() public view returns (uint256) {
        uint256 count = _rootCount;
        return count == 0 ? 0 : _rootRing[(count - 1) % rootHistorySize];
    }

    /// @notice Whether `r` is one of the last `rootHistorySize` committed roots. 0 is never
    /// known.
    function isKnownRoot(uint256 r) external view returns (bool) {
        if (r == 0) return false;
        uint256 count = _rootCount;
        uint256 ring = rootHistorySize;
        uint256 n = count < ring ? count : ring;
        for (uint256 i = 1; i <= n; ++i) {
            if (_rootRing[(count - i) % ring] == r) return true;
        }
        return false;
    }

    /// @notice Number of leaves in the tree.
    function treeSize() external view returns (uint256) {
        return _treeSize;
    }

    /// @notice Number of roots committed so far.
    function rootCount() external view returns (uint256) {
        return _rootCount;
    }

    /// @notice Number of leaves covered by the last committed root (`root()`).
    function committedSize() external view returns (uint256) {
        return _committedSize;
    }

    /// @notice The epoch of the current block: (block.timestamp - genesisTime) / epochLen.
    function currentEpoch() public view returns (uint64) {
        return uint64((block.timestamp - genesisTime) / epochLen);
    }

    /// @notice Credit units outstanding for expiry epoch `epoch` (kept after a claim).
    function outstanding(uint64 epoch) external view returns (uint256) {
        return _epochs[epoch].outstanding;
    }

    /// @notice Whether the provider has claimed expiry epoch `epoch`.
    function epochClaimed(uint64 epoch) external view returns (bool) {
        return _epochs[epoch].claimed;
    }

    /// @notice Allowed note amounts in credit units; empty means any.
    function denominations() external view returns (uint64[] memory) {
        return _denominations;
    }

    // ---------------------------------------------------------------- internals: notes

    function _checkAmount(uint256 amount) private view {
        if (amount == 0) revert ZeroAmount();
        if (amount % unit != 0) revert AmountNotMultipleOfUnit(amount);
    }

    /// @dev Token amount (a multiple of unit) to D, checking range and denominations.
    function _credits(uint256 amount) private view returns (uint64) {
        uint256 d = amount / unit;
        if (d == 0) revert ZeroAmount();
        if (d > type(uint64).max) revert AmountTooLarge(d);
        if (!_anyAmount && !_denominationAllowed[uint64(d)]) revert DenominationNotAllowed(d);
        return uint64(d);
    }

    /// @dev Records the note and returns its leaf H(LEAF, ID, D, E).
    function _addNote(uint256 id, uint64 d, uint64 e, uint256 index) private returns (uint256 leaf) {
        if (id >= SNARK_SCALAR_FIELD) revert NotAFieldElement(id);
        Note storage note = deposits[id];
        if (note.exists) revert NoteAlreadyDeposited(id);
        note.amount = d;
        note.expiryEpoch = e;
        note.leafIndex = uint64(index);
        note.exists = true;
        leaf = PoseidonT5.hash([TAG_LEAF, id, uint256(d), uint256(e)]);
    }

    /// @dev The notes of a depositMany whose tokens have arrived: insert all leaves (the
    /// caller commits the root).
    function _addBatch(uint256[] calldata ids, uint256[] calldata amounts, uint256 first) private {
        uint256 n = ids.length;
        uint64 e = currentEpoch() + noteLifetime;
        uint256[] memory leaves = new uint256[](n);
        uint64[] memory credits = new uint64[](n);
        uint256 sum = 0;
        for (uint256 i = 0; i < n; ++i) {
            uint64 d = _credits(amounts[i]);
            credits[i] = d;
            sum += d;
            leaves[i] = _addNote(ids[i], d, e, first + i);
            _insert(leaves[i], first + i);
        }
        _epochs[e].outstanding += uint192(sum);
        _treeSize = uint64(first + n);
        for (uint256 i = 0; i < n; ++i) {
            emit Deposited(ids[i], first + i, leaves[i], credits[i], e);
        }
    }

    // ---------------------------------------------------------------- internals: tree

    /// @dev Appends `leaf` at `index` (= the current size): hashes it up through the
    /// completed subtrees (one per trailing 1 bit of index) and stores the new subtree
    /// root in the frontier, at the level of the lowest set bit of index + 1. Does not
    /// update _treeSize.
    function _insert(uint256 leaf, uint256 index) private {
        uint256 level = 0;
        uint256 node = leaf;
        while (index & 1 == 1) {
            node = PoseidonT3.hash([_frontier[level], node]);
            index >>= 1;
            unchecked {
                ++level;
            }
        }
        _frontier[level] = node;
    }

    /// @dev The LeanIMT root of a tree of `size` > 0 leaves: start from the frontier node
    /// of the lowest set bit of size and fold upwards, hashing in the subtree of each higher
    /// set bit as the left child (popcount(size) - 1 hashes).
    function _rootOf(uint256 size) private view returns (uint256 acc) {
        uint256 level = _lowestSetBit(size);
        acc = _frontier[level];
        size >>= level + 1;
        unchecked {
            ++level;
        }
        while (size != 0) {
            if (size & 1 == 1) acc = PoseidonT3.hash([_frontier[level], acc]);
            size >>= 1;
            unchecked {
                ++level;
            }
        }
    }

    /// @dev Commits the root of the whole tree unless it is already the last committed one
    /// (the tree is append-only, so the root changes exactly when the size does).
    function _commitRoot() private returns (uint256 newRoot) {
        uint256 size = _treeSize;
        if (size == _committedSize) return root();
        newRoot = _rootOf(size);
        uint256 count = _rootCount;
        _rootRing[count % rootHistorySize] = newRoot;
        _rootCount = uint64(count + 1);
        _committedSize = uint64(size);
        emit RootCommitted(newRoot, size);
    }

    /// @dev The index of the lowest set bit of `x` > 0.
    function _lowestSetBit(uint256 x) private pure returns (uint256 l) {
        while (x & 1 == 0) {
            x >>= 1;
            unchecked {
                ++l;
            }
        }
    }

    // ---------------------------------------------------------------- internals: token

    /// @dev transferFrom(msg.sender -> this) and return what the pool's balance grew by.
    function _pull(uint256 amount) private returns (uint256) {
        uint256 before = token.balanceOf(address(this));
        _callToken(abi.encodeCall(IERC20Minimal.transferFrom, (msg.sender, address(this), amount)));
        uint256 afterwards = token.balanceOf(address(this));
        if (afterwards < before) revert TransferAmountMismatch(amount, 0);
        return afterwards - before;
    }

    function _send(address to, uint256 amount) private {
        _callToken(abi.encodeCall(IERC20Minimal.transfer, (to, amount)));
    }

    /// @dev A token call that must not revert and must return true or nothing (for tokens
    /// that return no bool); a call to an address without code fails. A revert of the
    /// token is passed on as it is (e.g. its own insufficient-allowance error).
    function _callToken(bytes memory data) private {
        (bool ok, bytes memory ret) = address(token).call(data);
        if (!ok) {
            if (ret.length == 0) revert TokenCallFailed();
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (ret.length == 0) {
            if (address(token).code.length == 0) revert TokenCallFailed();
        } else if (ret.length < 32 || abi.decode(ret, (uint256)) != 1) {
            revert TokenCallFailed();
        }
    }
}
