package nbd

// The protocol's numbers, named as doc/proto.md of the NetworkBlockDevice/nbd
// repository names them ("Values" and the message layouts it refers to).

const (
	// "Newstyle negotiation".
	nbdMagic  = 0x4e42444d41474943 // "NBDMAGIC"
	optMagic  = 0x49484156454F5054 // "IHAVEOPT"
	replMagic = 0x3e889045565a9    // option replies ("Fixed newstyle negotiation")

	// "Handshake flags" and "Client flags".
	flagFixedNewstyle = 1 << 0
	flagNoZeroes      = 1 << 1

	// "Transmission flags".
	flagHasFlags     = 1 << 0
	flagReadOnly     = 1 << 1
	flagSendDF       = 1 << 7
	flagCanMultiConn = 1 << 8

	// "Option types".
	optExportName      = 1
	optAbort           = 2
	optList            = 3
	optStartTLS        = 5
	optInfo            = 6
	optGo              = 7
	optStructuredReply = 8
	optListMetaContext = 9
	optSetMetaContext  = 10

	// "Option reply types".
	repAck         = 1
	repServer      = 2
	repInfo        = 3
	repMetaContext = 4
	repErrUnsup    = 1<<31 + 1
	repErrInvalid  = 1<<31 + 3
	repErrTLSReqd  = 1<<31 + 5
	repErrUnknown  = 1<<31 + 6
	repErrTooBig   = 1<<31 + 9

	// NBD_REP_INFO types (under "NBD_REP_INFO").
	infoExport      = 0
	infoName        = 1
	infoDescription = 2
	infoBlockSize   = 3

	// "Request message", "Simple reply message", "Structured reply chunk
	// message".
	requestMagic    = 0x25609513
	simpleMagic     = 0x67446698
	structuredMagic = 0x668e33ef

	// "Request types".
	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	cmdTrim        = 4
	cmdWriteZeroes = 6
	cmdBlockStatus = 7

	// "Command flags".
	cmdFlagDF     = 1 << 2
	cmdFlagReqOne = 1 << 3

	// "Structured reply flags" and "Structured reply types".
	replyFlagDone       = 1 << 0
	replyNone           = 0
	replyOffsetData     = 1
	replyOffsetHole     = 2
	replyBlockStatus    = 5
	replyError          = 1<<15 + 1
	replyErrorOffset    = 1<<15 + 2
	stateHole           = 1 << 0
	stateZero           = 1 << 1
	baseAllocation      = "base:allocation"
	baseAllocationID    = 1
	maxErrorMessageSize = 4096

	// "Error values".
	errPerm  = 1
	errIO    = 5
	errInval = 22

	// "Size constraints": the defaults a server SHOULD support, advertised
	// as NBD_INFO_BLOCK_SIZE when asked.
	minBlock     = 1
	preferred    = 4096
	maxPayload   = 32 << 20
	maxOptionLen = 64 << 10 // an option's data, longer is refused as a denial of service
	maxString    = 4096     // "Conventions": a string MUST be no longer than 4096 bytes
)
