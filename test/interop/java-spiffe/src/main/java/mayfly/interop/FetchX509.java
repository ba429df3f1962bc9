package mayfly.interop;

import io.spiffe.bundle.x509bundle.X509Bundle;
import io.spiffe.svid.x509svid.X509Svid;
import io.spiffe.workloadapi.DefaultX509Source;

import java.security.Signature;
import java.security.cert.X509Certificate;
import java.time.Duration;

/**
 * Fetches the default X.509-SVID from the Workload API socket named by
 * SPIFFE_ENDPOINT_SOCKET (or argv[0]) with java-spiffe's DefaultX509Source, checks that the
 * private key signs for the leaf certificate, and prints one JSON line. Exit code 0 only
 * when every step succeeded.
 */
public final class FetchX509 {
    public static void main(String[] args) throws Exception {
        DefaultX509Source.X509SourceOptions.Builder options = DefaultX509Source.X509SourceOptions.builder()
                .initTimeout(Duration.ofSeconds(20));
        if (args.length > 0) {
            options.spiffeSocketPath(args[0]);
        }
        try (DefaultX509Source source = DefaultX509Source.newSource(options.build())) {
            X509Svid svid = source.getX509Svid();
            X509Certificate leaf = svid.getLeaf();
            X509Bundle bundle = source.getBundleForTrustDomain(svid.getSpiffeId().getTrustDomain());

            // Prove the key belongs to the certificate: sign with one, verify with the other.
            String algorithm = leaf.getPublicKey().getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
            byte[] message = "mayfly java-spiffe interop".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            Signature signer = Signature.getInstance(algorithm);
            signer.initSign(svid.getPrivateKey());
            signer.update(message);
            byte[] signature = signer.sign();
            Signature verifier = Signature.getInstance(algorithm);
            verifier.initVerify(leaf.getPublicKey());
            verifier.update(message);
            boolean keyMatches = verifier.verify(signature);

            System.out.println("{\"spiffeId\":\"" + svid.getSpiffeId() + "\""
                    + ",\"chainLength\":" + svid.getChain().size()
                    + ",\"trustDomain\":\"" + svid.getSpiffeId().getTrustDomain() + "\""
                    + ",\"bundleAuthorities\":" + bundle.getX509Authorities().size()
                    + ",\"keyMatches\":" + keyMatches + "}");
            System.exit(keyMatches ? 0 : 3);
        }
    }
}
